"""Domain services: no Textual imports. The UI, the CLI and tests all call these."""
