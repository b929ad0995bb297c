"""The dashboard in Simplified Chinese in real Chromium: chosen by the browser's
language, switched to English and back, the API's errors and the live
execution page in it."""

import json
import re

import pytest
from playwright.sync_api import expect

from bench.processes import DEMO_PASSWORD
from tests.factories import chain, node

pytestmark = pytest.mark.usefixtures("compiled_messages")

QUICK = chain(
    node("hello", "log", message="你好", level="info"), node("pick", "transform", expression="n")
)


@pytest.fixture
def context(browser):
    """A browser whose language is Chinese (China), as it tells every site."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


def test_the_dashboard_speaks_chinese_to_a_chinese_browser_and_switches(server, page):
    page.goto(f"{server.url}/")
    page.wait_for_url(re.compile(r"/login/\?next=/$"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/")

    # The list: the template's texts and the modules' (the connection state).
    expect(page.locator("h1")).to_have_text("执行")
    expect(page.locator('#status-filter [data-status="running"]')).to_have_text("运行中")
    expect(page.locator("#connection")).to_have_text("实时")

    # The API's validation errors come in Chinese under their field.
    page.goto(f"{server.url}/workflows/new/")
    page.fill("#name", "你好")
    page.fill("#definition", json.dumps({"nodes": [node("a", "sleep")], "edges": []}))
    expect(page.locator("#preview-note")).to_have_text("1 个节点")
    page.click("#save")
    expect(page.locator('[data-error-for="definition"]')).to_contain_text(
        "节点 'a'：未知的类型 'sleep'"
    )

    # An execution, live, in Chinese; what it recorded stays as recorded.
    page.fill("#definition", json.dumps(QUICK))
    page.click("#save")
    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]+/\?created=1$"))
    expect(page.locator("#saved")).to_have_text("已创建。可在右侧启动一次执行。")
    page.fill("#input_data", '{"n": 7}')
    page.click("#start")
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]+/$"))
    expect(page.locator("#execution-page")).to_have_attribute("data-settled", "true")
    expect(page.locator("#status")).to_have_text("已完成")
    expect(page.locator("#connection")).to_have_text("已结束")
    expect(page.locator("#node-summary")).to_have_text("已完成 2 / 2")
    expect(page.locator("#duration")).to_have_text(re.compile(r"^\d+\.\d\d 秒$"))
    first = page.locator(".log-line").first  # the engine's, stored in English
    expect(first.locator(".log-source")).to_have_text("引擎")
    expect(first.locator(".log-message")).to_have_text("Execution started")
    expect(page.locator(".log-line", has_text="你好").locator(".log-source")).to_have_text("hello")
    expect(page.locator("#message")).to_have_text(re.compile(r"^Completed in "))

    # The switch: English, kept over the browser's language, then Chinese again.
    page.click('#language button[value="en"]')
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#status")).to_have_text("Completed")
    expect(page.locator("#duration")).to_have_text(re.compile(r"^\d+\.\d\d s$"))
    page.goto(f"{server.url}/")
    expect(page.locator("h1")).to_have_text("Executions")
    expect(page.locator("#connection")).to_have_text("Live")
    page.click('#language button[value="zh-hans"]')
    expect(page.locator("h1")).to_have_text("执行")
    expect(page.locator('#language button[value="zh-hans"]')).to_have_attribute(
        "aria-pressed", "true"
    )
