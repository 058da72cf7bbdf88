"""Issue 14 item 1, the seed's tab-addict promise with the default transport: one headless Chromium, 12 tabs of the
demo's origin, each running the client with default options (`transport: 'auto'`, WebSocket first), each joining
the chat and broadcasting one message; every tab receives all 12 broadcasts, and a 13th tab still loads a page of
the site (each tab's stream is a WebSocket, so it holds none of Chromium's 6 HTTP/1.1 connections to the host).

Run by run-browser-tests.sh (MINERVA_BROWSER_TESTS=1) beside test_browser.py, against the same kind of demo.
"""

import time
import unittest

from test_browser import ENABLED, Demo, call, make_browser, wait_until

TABS = 12


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
class DozenTabsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = Demo()
        cls.browser = make_browser()

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        cls.demo.stop()

    def test_a_dozen_tabs_chat_with_the_default_transport_and_a_13th_loads_a_page(self):
        driver = self.browser
        handles = []
        for index in range(TABS):
            if index:
                driver.switch_to.new_window('tab')
            driver.get(self.demo.base + '/static/harness.html')
            handles.append(driver.current_window_handle)
            # Default options; the page keeps the stream in window.tab.
            call(driver, 'new Promise((resolve) => { window.tab = openStream(undefined); '
                         'window.tab.stream.sendString("begin_chat"); setTimeout(resolve, 50); })')
        # Every tab's stream is connected before anyone broadcasts (begin_chat is processed in order, per stream).
        for handle in handles:
            driver.switch_to.window(handle)
            wait_until(lambda: driver.execute_script(
                'return window.tab.states.some((s) => s.startsWith("connected"))'), 20, 'a tab never connected')
        time.sleep(0.5)
        started = time.monotonic()
        for index, handle in enumerate(handles):
            driver.switch_to.window(handle)
            driver.execute_script(f'window.tab.stream.sendString("broadcast:hello from tab {index}")')
        for handle in handles:
            driver.switch_to.window(handle)
            wait_until(lambda: driver.execute_script(
                'return window.tab.received.filter((s) => s.startsWith("TEXT|")).length') >= TABS, 30,
                'a tab did not receive all the broadcasts')
            lines = driver.execute_script('return window.tab.received.filter((s) => s.startsWith("TEXT|"))')
            self.assertEqual(sorted(line.split('|', 2)[2] for line in lines),
                             sorted(f'hello from tab {i}' for i in range(TABS)))
            states = driver.execute_script('return window.tab.states')
            self.assertIn('connected:websocket', states)
            self.assertEqual(driver.execute_script('return window.tab.resets'), [])
        print(f'\n{TABS} tabs: every tab had all {TABS} broadcasts {time.monotonic() - started:.2f} s after the first')
        driver.switch_to.new_window('tab')
        driver.set_page_load_timeout(10)
        loaded = time.monotonic()
        driver.get(self.demo.base + '/healthz')
        self.assertIn('ok', driver.page_source)
        print(f'a 13th tab loaded /healthz in {time.monotonic() - loaded:.2f} s')
