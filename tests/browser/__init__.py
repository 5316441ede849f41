"""Browser tests: server-rendered pages in Debian's chromium, driven by Playwright."""
