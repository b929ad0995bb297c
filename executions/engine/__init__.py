"""The workflow engine: definitions, node types and the DAG runner."""
