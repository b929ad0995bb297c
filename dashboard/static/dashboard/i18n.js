// The dashboard's texts in the page's language. The catalog is Django's
// JavaScript catalog (`/jsi18n/`, a plain script that base.html loads before
// any module); without it every text stays in English. Strings are marked with
// gettext() and ngettext() so that `makemessages -d djangojs` finds them.

const catalog = globalThis.django;

/** The page's language (`<html lang>`), for dates and numbers. */
export const language = document.documentElement.lang || "en";

export function gettext(text) {
  return catalog ? catalog.gettext(text) : text;
}

export function ngettext(singular, plural, count) {
  if (catalog) return catalog.ngettext(singular, plural, count);
  return count === 1 ? singular : plural;
}

/** `format("%(done)s of %(total)s done", {done, total})`: named values into a translated text. */
export function format(text, values) {
  return text.replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
