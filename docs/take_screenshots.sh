#!/usr/bin/env bash
# Reproduce the README's UI screenshots (docs/ui_*.png) from a real headless browser:
#   docs/ui_dagster_assets.png      Dagster: the global asset lineage, every group expanded
#   docs/ui_dagster_automation.png  Dagster: the automation page (schedules and sensors)
#   docs/ui_mlflow_runs.png         MLflow: the runs of the `longvie` experiment
#   docs/ui_mlflow_model.png        MLflow: the registered model `longvie`, versions and aliases
#   docs/ui_mlflow_version.png      MLflow: the champion version as a model, with its signature
#
# Usage: docs/take_screenshots.sh   (needs Debian's chromium: apt-get install -y chromium)
# Uses the UIs on $DAGSTER_PORT / $MLFLOW_PORT (default 3000 / 5000) when both answer; otherwise
# starts `python -m longvie.ui` (what `make ui` runs) and stops it again at the end.
#
# Why chromium is driven over its DevTools protocol instead of `chromium --headless
# --screenshot=... URL`: both UIs keep view state in the browser's localStorage, and a bare
# one-shot screenshot gets the first-visit view: Dagster's community sign-up dialog over
# collapsed asset groups with the asset tree taking a third of the width, MLflow's assistant
# panel open beside a GenAI-mode page. Here a throw-away browser profile is given the
# settings a returning user would have (dialog seen, assistant closed, "Model training" mode,
# a few tag columns), the Dagster panels are folded away before the groups are expanded (so the
# graph is fitted to the full width), and each page is captured once its content is there.
# Nothing is written to the servers' state.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DAGSTER_PORT=${DAGSTER_PORT:-3000}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
export DAGSTER_PORT MLFLOW_PORT
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }

answers() { "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
up() { answers "http://127.0.0.1:$DAGSTER_PORT/server_info" && answers "http://127.0.0.1:$MLFLOW_PORT/health"; }

if ! up; then
  log=$(mktemp --suffix=.longvie-ui.log)
  # setsid: the launcher gets its own process group, so our Ctrl-C reaches it only through trap.
  setsid "$PY" -m longvie.ui >"$log" 2>&1 </dev/null &
  ui_pid=$!
  trap 'kill -INT "$ui_pid" 2>/dev/null; wait "$ui_pid" || true' EXIT
  for _ in $(seq 180); do
    up && break
    kill -0 "$ui_pid" 2>/dev/null || { cat "$log" >&2; echo "the UIs did not start" >&2; exit 1; }
    sleep 1
  done
  up || { cat "$log" >&2; echo "the UIs did not answer in 180 s" >&2; exit 1; }
fi

"$PY" - <<'PY'
"""Drive headless chromium over the DevTools protocol and save the four screenshots."""

import asyncio
import base64
import itertools
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets  # in the project venv (requirements.lock), via uvicorn

DAGSTER = f"http://127.0.0.1:{os.environ['DAGSTER_PORT']}"
MLFLOW = f"http://127.0.0.1:{os.environ['MLFLOW_PORT']}"
OUT = Path("docs")


class Page:
    def __init__(self, socket):
        self.socket, self.ids = socket, itertools.count(1)

    async def call(self, method, **params):
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def open(self, url, width, height, wait_for, storage=None):
        """Load ``url`` at width x height, after seeding localStorage for its origin."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        if storage:
            origin = url.split("/#")[0].split("/", 3)[:3]
            await self.call("Page.navigate", url="/".join(origin) + "/robots.txt")
            await asyncio.sleep(1)
            await self.js(
                "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});"
                        for k, v in storage.items())
            )  # fmt: skip
        await self.call("Page.navigate", url=url)
        await self.wait_for_text(wait_for)

    async def wait_for_text(self, text, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.js(f"document.body && document.body.innerText.includes({text!r})"):
                await asyncio.sleep(3)  # let late requests, fonts and layout settle
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{text!r} did not appear within {timeout} s")

    async def shot(self, name):
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        (OUT / name).write_bytes(base64.b64decode(data))
        print(f"wrote {OUT / name}")


def experiment_id(name="longvie"):
    url = f"{MLFLOW}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
    with urllib.request.urlopen(url) as response:
        return json.load(response)["experiment"]["experiment_id"]


async def main(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
        target = next(t for t in json.load(response) if t["type"] == "page")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=2**28) as socket:
        page = Page(socket)
        await page.call("Page.enable")

        # Dagster. The community dialog is remembered in localStorage ("communityNux").
        dagster_storage = {"communityNux": '"1"'}
        await page.open(f"{DAGSTER}/asset-groups", 1600, 760, "Global asset lineage",
                        dagster_storage)  # fmt: skip
        # Fold the navigation and the asset tree, then expand all groups (Alt+E): the new
        # layout is fitted to the width the graph now has.
        await page.js(
            "document.querySelectorAll('button').forEach(b => {"
            " if (b.querySelector('[aria-label=panel_show_right]')) b.click(); })"
        )
        await asyncio.sleep(1)
        for kind in ("keyDown", "keyUp"):
            await page.call("Input.dispatchKeyEvent", type=kind, key="e", code="KeyE",
                            modifiers=1, windowsVirtualKeyCode=69)  # fmt: skip
        await page.wait_for_text("stage3_controller")
        await page.shot("ui_dagster_assets.png")

        await page.open(f"{DAGSTER}/automation", 1600, 560, "orchestration.definitions")
        await page.shot("ui_dagster_automation.png")

        # MLflow: assistant closed, "Model training" mode, the longvie tags as columns.
        experiment = experiment_id()
        columns = ["tags.`longvie.step`", "tags.`longvie.profile`", "tags.`longvie.data_hash`",
                   "tags.`longvie.git_commit`", "attributes.`Models`"]  # fmt: skip
        mlflow_storage = {
            "mlflow.assistant.panelOpen_v1": "false",
            "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
            "mlflow.workflowType_v1": '"machine_learning"',
            f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment}"]-ReactComponentState':
                json.dumps({"selectedColumns": columns}),
        }  # fmt: skip
        await page.open(f"{MLFLOW}/#/experiments/{experiment}/runs", 1600, 1000,
                        "matching runs", mlflow_storage)  # fmt: skip
        await page.shot("ui_mlflow_runs.png")

        await page.open(f"{MLFLOW}/#/models/longvie", 1600, 1000, "Version ")
        await page.shot("ui_mlflow_model.png")

        # The champion (else the newest) version: a pyfunc model whose page shows its schema.
        url = f"{MLFLOW}/api/2.0/mlflow/registered-models/get?name=longvie"
        with urllib.request.urlopen(url) as response:
            model = json.load(response)["registered_model"]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        version = aliases.get("champion") or max(
            (v["version"] for v in model.get("latest_versions", [])), key=int)
        await page.open(f"{MLFLOW}/#/models/longvie/versions/{version}", 1600, 1000, "Schema")
        await page.shot("ui_mlflow_version.png")


# Chromium's helper processes may still write to the profile as the browser exits.
with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        asyncio.run(main(int(port_file.read_text().split()[0])))
    finally:
        browser.terminate()
        browser.wait(timeout=30)
PY
