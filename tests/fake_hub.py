"""An in-process stand-in for the Hugging Face Hub's upload API, plugged into huggingface_hub's HTTP client.

THIS IS A FAKE, used only because the tests run without network access. It answers the calls an upload makes
(create the repository, validate README.md's YAML, ask how to upload each file, create the commit) and records what
it received, so tests can check which files reach the Hub, with what content and commit message. It does not
validate anything: it accepts every card (the card is checked offline by the tests themselves) and tells the client
to send every file inline ("regular" upload mode), where the real Hub sends large files through LFS/Xet. The client's
once-a-day fetch of the agent-harness registry gets a 404, as for an old Hub; any other call gets a 404 and is
recorded in `unexpected`.
"""

import base64
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx2
from huggingface_hub import constants
from huggingface_hub.utils import _http


@dataclass
class FakeCommit:
    repo_id: str
    revision: str
    message: str
    files: dict[str, bytes]


@dataclass
class FakeHub:
    created: list[dict] = field(default_factory=list)
    validated_cards: list[str] = field(default_factory=list)
    commits: list[FakeCommit] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path == "/api/repos/create":
            body = json.loads(request.content)
            self.created.append(body)
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo_id}", "name": repo_id})
        if request.method == "POST" and path == "/api/validate-yaml":
            self.validated_cards.append(json.loads(request.content)["content"])
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path == "/api/agent-harnesses":
            return httpx2.Response(404, json={"error": "not served"})
        if re.fullmatch(r"/api/models/(.+)/preupload/(.+)", path):
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [
                {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False} for item in files
            ]})
        if match := re.fullmatch(r"/api/models/(.+)/commit/(.+)", path):
            return self._commit(match.group(1), match.group(2), request.content)
        if request.method in ("GET", "HEAD") and (match := re.fullmatch(r"/(.+/.+)/resolve/([^/]+)/(.+)", path)):
            return self._download(*match.groups())
        self.unexpected.append(f"{request.method} {path}")
        return httpx2.Response(404, json={"error": f"the fake Hub does not serve {request.method} {path}"})

    def _download(self, repo_id: str, revision: str, filename: str) -> httpx2.Response:
        """A file as of the newest commit to the repository; 404 EntryNotFound otherwise (as the Hub answers)."""
        for commit in reversed(self.commits):
            if commit.repo_id == repo_id and filename in commit.files:
                content = commit.files[filename]
                return httpx2.Response(200, content=content, headers={
                    "ETag": f'"{len(content)}"', "X-Repo-Commit": "0" * 40, "Content-Length": str(len(content))})
        return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound"}, json={"error": "Entry not found"})

    def _commit(self, repo_id: str, revision: str, content: bytes) -> httpx2.Response:
        message, files = "", {}
        for line in content.decode().splitlines():
            entry = json.loads(line)
            if entry["key"] == "header":
                message = entry["value"]["summary"]
            elif entry["key"] == "file":
                files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
            else:
                self.unexpected.append(f"commit entry {entry['key']}")
        self.commits.append(FakeCommit(repo_id, revision, message, files))
        oid = f"{len(self.commits):040x}"
        return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{repo_id}/commit/{oid}",
                                          "commitOid": oid, "pullRequestUrl": None})


@contextmanager
def fake_hub_client(monkeypatch):
    """Route huggingface_hub's shared HTTP client to a FakeHub (with a placeholder token) inside the block."""
    hub = FakeHub()
    monkeypatch.setenv("HF_TOKEN", "hf_placeholder_token_for_the_fake_hub")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle)))
    try:
        yield hub
    finally:
        _http.set_client_factory(_http.default_client_factory)
