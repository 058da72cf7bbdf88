"""Checks that the ORIGINAL compiled Minerva client (ludiosarchive/Minerva, minerva/compiled_client/minerva-client.js;
never commit it) works against minerva-demo in headless Chromium: 200 echoes of every restricted character plus
echo_twice and an unknown command, a chat between two streams, reset_me, and the room after a reset.

Setup (Debian 12): apt-get install chromium chromium-driver python3-selenium; swift build --product minerva-demo.
Run: /usr/bin/python3 Tests/OriginalClient/check_original_client.py /path/to/original/minerva-client.js
(MINERVA_DEMO_THREADS=2 runs the demo with two event loops.)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main():
    client = sys.argv[1]
    # MINERVA_SERVER_URL: use that server (e.g. a balancer in front of a cluster) instead of starting one; its
    # --static-dir must already hold minerva-client.js (the original) and orig.html (check.html).
    server = os.environ.get('MINERVA_SERVER_URL', '').rstrip('/')
    static = tempfile.mkdtemp()
    shutil.copy(client, os.path.join(static, 'minerva-client.js'))
    shutil.copy(os.path.join(HERE, 'check.html'), os.path.join(static, 'orig.html'))
    port = free_port()
    base = server or 'http://127.0.0.1:%d' % port
    threads = os.environ.get('MINERVA_DEMO_THREADS', '1')
    demo = None if server else subprocess.Popen(
        [os.path.join(REPO, '.build', 'debug', 'minerva-demo'), '--port', str(port), '--static-dir', static,
         '--threads', threads], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + '/healthz', timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        options = Options()
        options.binary_location = '/usr/bin/chromium'
        for argument in ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']:
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
        try:
            driver.get(base + '/static/orig.html')
            deadline = time.time() + 60
            while time.time() < deadline and driver.title != 'done':
                time.sleep(0.2)
            results = driver.execute_script('return window.results')
        finally:
            driver.quit()
    finally:
        if demo:
            demo.terminate()
            demo.wait()
        shutil.rmtree(static)
    checks = {k: results.get(k) for k in ('echoOk', 'chatOk', 'resetOk', 'afterResetOk')}
    print(json.dumps({'checks': checks, 'errors': results['errors'], 'echoMs': results.get('echoMs'),
                      'b': results['b']['strings'], 'a_resets': results['a']['resets']}))
    sys.exit(0 if all(checks.values()) and not results['errors'] else 1)


if __name__ == '__main__':
    main()
