"""The web app in a real browser: `cnnlab serve` in a subprocess on 127.0.0.1, Debian's headless
Chromium driven by Selenium uploads an image, and the page shows the top class and the overlay."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.runs.evaluate import predict
from cnnlab.runs.run import load_run
from web_fixtures import web_folder, web_run  # noqa: F401 - fixtures

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1000,900")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(web_run: Path, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(cnnlab.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "-q", "serve", str(web_run), "--port", str(port),
                                "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"cnnlab serve did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_upload_in_chromium_shows_the_top_class_and_the_overlay(server: str, web_run: Path, web_folder: Path,
                                                               tmp_path: Path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): `make browser` installs it (Debian)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = sorted((web_folder / "<img src=x onerror=alert(1)>").glob("*.png"))[0]
    expected = next(predict([load_run(web_run)], [str(image)], torch.device("cpu"), top_k=1)).top[0][0]
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(server + "/")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "model-name").text.startswith("ahe_cnn"))
        driver.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "top-class").text)
        assert driver.find_element(By.ID, "top-class").text == expected
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("const i = document.getElementById('overlay'); return i.complete && i.naturalWidth > 0"))
        assert driver.execute_script("return document.getElementById('overlay').naturalWidth") == 16
        classes = [b.text.rsplit("\n", 1)[0] for b in driver.find_elements(By.CSS_SELECTOR, "#top button")]
        assert sorted(classes) == sorted(["<img src=x onerror=alert(1)>", 'circle & "ring"', "square"])
        other = next(b for b in driver.find_elements(By.CSS_SELECTOR, "#top button") if expected not in b.text)
        other_class = other.text.rsplit("\n", 1)[0]
        other.click()  # the overlay for another class
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.ID, "overlay-caption").text.startswith(f"Grad-CAM for {other_class} "))
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0  # no injected markup
        assert driver.find_element(By.ID, "status").get_attribute("class") == ""
        assert driver.save_screenshot(str(tmp_path / "serve.png"))
        assert (tmp_path / "serve.png").stat().st_size > 10_000
    finally:
        driver.quit()
