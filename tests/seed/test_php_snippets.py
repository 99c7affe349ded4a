"""The seed documentation's own PHP snippets, unchanged but for host and key, run by php-cli."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.support.gateway import Gateway

CHAT_PHP = r"""<?php
$api_url = "__URL__/api/chat-completions/";
$api_key = "__KEY__";
$data = [
"model" => "gpt-4o-mini", //gpt-4o, gpt-4.1, gpt-4.1-mini, gpt-4.1-nano
"messages" => [
["role" => "developer", "content" => "You are a helpful assistant."],
["role" => "user", "content" => "Hello"],
["role" => "assistant", "content" => "How can I help you today?"],
["role" => "user", "content" => "What's the largest U.S. state by area?"],
],
"temperature" => 1.0,
"max_completion_tokens" => 1000
];
$headers = [
"Content-Type: application/json",
"Authorization: Bearer $api_key"
];
$ch = curl_init();
curl_setopt($ch, CURLOPT_URL, $api_url);
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_HTTPHEADER, $headers);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, false);
curl_setopt($ch, CURLOPT_POSTFIELDS, json_encode($data));
// streamed
curl_setopt($ch, CURLOPT_WRITEFUNCTION, function($ch, $data) {
echo $data;
ob_flush();
flush();
return strlen($data);
});
$response = curl_exec($ch);
if (curl_errno($ch)) {
echo "cURL error: " . curl_error($ch);
}
curl_close($ch);
?>
"""

IMAGE_PHP = r"""<?php
// API URL and Key
$url = "__URL__/api/texttoimage/";
$API_Key = "__KEY__";
// Headers
$headers = [
"Content-Type: application/json",
"Authorization: Bearer $API_Key"
];
// Data to be sent in the request
$data = [
"model" => "realvision",
"prompt" => "Ultra realistic portrait of a 20 year old woman, wearing an elegant black gown, joyful expression, deep shadows, cinematic composition, moody lighting",
"negativePrompt" => "unrealistic eyes, malformed features, ugly drawn",
"scheduler" => "DPM++ SDE",
"steps" => 4,
"cfgScale" => 2.0,
"width" => 1152,
"height" => 768
];
// Initialize cURL session
$ch = curl_init();
// Set cURL options
curl_setopt($ch, CURLOPT_URL, $url);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_HTTPHEADER, $headers);
curl_setopt($ch, CURLOPT_POSTFIELDS, json_encode($data));
// Execute the cURL request
$response = curl_exec($ch);
echo $response;
// Close the cURL session
curl_close($ch);
?>
"""


def run_php(source: str, gw: Gateway, tmp_path: Path) -> str:
    assert shutil.which("php"), "php-cli is installed by `make test` (see the Makefile)"
    script = tmp_path / "snippet.php"
    script.write_text(source.replace("__URL__", gw.url).replace("__KEY__", gw.api_key))
    # PHP's own notices (ob_flush with no buffer in the CLI) go to stderr, not the output
    done = subprocess.run(
        ["php", "-d", "display_errors=stderr", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_php_chat_snippet_streams(gateway: Gateway, tmp_path: Path) -> None:
    before = gateway.balance_nano()
    out = run_php(CHAT_PHP, gateway, tmp_path)
    events = [line for line in out.split("\n") if line]
    assert events[-1] == "data: [DONE]" and "cURL error" not in out
    usage = json.loads(events[-2][6:])["usage"]
    assert (
        before - gateway.balance_nano()
        == usage["prompt_tokens"] * 150 + usage["completion_tokens"] * 600
    )


def test_php_image_snippet_creates_a_job(image_gateway: Gateway, tmp_path: Path) -> None:
    created = json.loads(run_php(IMAGE_PHP, image_gateway, tmp_path))
    assert created["status"] == "success" and created["jobid"] and created["signature"]
    deadline = time.monotonic() + 30
    while True:
        state = requests.post(
            image_gateway.url + "/api/texttoimage/jobs/",
            timeout=10,
            json={"jobid": str(created["jobid"]), "signature": created["signature"]},
        ).json()
        if state["status"] == "success":
            break
        assert time.monotonic() < deadline and state["status"] in ("pending", "processing")
        time.sleep(0.1)
