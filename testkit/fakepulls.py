"""``FakeGitHub`` with pull requests and their comments, for preview environments.

Adds the calls previews make: ``GET /repos/{o}/{r}/pulls`` (open ones),
``GET .../pulls/{n}``, ``GET``/``POST .../issues/{n}/comments``, ``PATCH
.../issues/comments/{id}`` and ``GET .../deployments``. Every request is recorded as in
``FakeGitHub``, so a test counts the POSTs and PATCHes of comments.

    fake.open_pull("acme/app", 7, head_ref="feature", head_sha=sha)
    fake.open_pull("acme/app", 8, head_ref="main", head_sha=sha, head_repo="mallory/app")
    fake.close_pull("acme/app", 7, merged=True)
"""

from __future__ import annotations

from typing import Any

from testkit.fakegithub import FakeGitHub, _Error, _iso


class FakeGitHubPulls(FakeGitHub):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}  # (full name, number) -> state
        self.comments: dict[int, dict[str, Any]] = {}  # id -> comment

    # -- setup -----------------------------------------------------------------

    def open_pull(
        self,
        full_name: str,
        number: int,
        *,
        head_ref: str,
        head_sha: str,
        head_repo: str | None = None,
        clone_url: str | None = None,
    ) -> None:
        """An open pull request; ``head_repo`` other than ``full_name`` makes it a fork's."""
        with self._lock:
            self.pulls[(full_name.lower(), number)] = {
                "state": "open",
                "merged": False,
                "head_ref": head_ref,
                "head_sha": head_sha,
                "head_repo": head_repo or full_name,
                "clone_url": clone_url or f"https://github.com/{head_repo or full_name}.git",
                "base": full_name,
            }

    def push_pull(self, full_name: str, number: int, head_sha: str) -> None:
        with self._lock:
            self.pulls[(full_name.lower(), number)]["head_sha"] = head_sha

    def close_pull(self, full_name: str, number: int, *, merged: bool = False) -> None:
        with self._lock:
            self.pulls[(full_name.lower(), number)].update(state="closed", merged=merged)

    def comments_on(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.comments.values() if c["issue"] == (full_name.lower(), number)]

    # -- routes ----------------------------------------------------------------

    def _route(
        self, method: str, path: str, auth: str | None, credential: str | None, body: Any
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 4 and parts[0] == "repos" and parts[3] in ("pulls", "issues"):
            user = self._token_owner(auth, credential)
            repo = self._visible_repo(f"{parts[1]}/{parts[2]}", credential, user)
            key, rest = repo.full_name.lower(), parts[3:]
            if method == "GET" and rest == ["pulls"]:
                found = [n for (k, n), p in self.pulls.items() if k == key and p["state"] == "open"]
                return 200, [self._pull_json(key, n) for n in sorted(found, reverse=True)]
            if method == "GET" and len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit():
                if (key, int(rest[1])) not in self.pulls:
                    raise _Error(404)
                return 200, self._pull_json(key, int(rest[1]))
            if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
                issue = (key, int(rest[1]))
                if method == "GET":
                    mine = [c for c in self.comments.values() if c["issue"] == issue]
                    return 200, [self._comment_json(repo.full_name, c) for c in mine]
                if method == "POST":
                    if issue not in self.pulls:
                        raise _Error(404)
                    comment_id = next(self._ids)
                    self.comments[comment_id] = {
                        "id": comment_id,
                        "issue": issue,
                        "body": body["body"],
                        "edits": 0,
                    }
                    return 201, self._comment_json(repo.full_name, self.comments[comment_id])
            if method == "PATCH" and rest[:2] == ["issues", "comments"] and len(rest) == 3:
                comment = self.comments.get(int(rest[2])) if rest[2].isdigit() else None
                if comment is None:
                    raise _Error(404)
                comment["body"] = body["body"]
                comment["edits"] += 1
                return 200, self._comment_json(repo.full_name, comment)
            raise _Error(404)
        if method == "GET" and parts[:1] == ["repos"] and parts[3:] == ["deployments"]:
            user = self._token_owner(auth, credential)
            repo = self._visible_repo(f"{parts[1]}/{parts[2]}", credential, user)
            url = self._repo_url(repo)
            return 200, [d for d in self.deployments.values() if d["repository_url"] == url]
        return super()._route(method, path, auth, credential, body)

    # -- shapes ----------------------------------------------------------------

    def _pull_json(self, key: str, number: int) -> dict[str, Any]:
        pull = self.pulls[(key, number)]
        base = self._repos[key]
        head_repo = dict(self._repo_json(base))
        head_repo.update(
            full_name=pull["head_repo"],
            name=pull["head_repo"].split("/")[1],
            clone_url=pull["clone_url"],
            fork=pull["head_repo"].lower() != key,
        )
        url = f"{self._repo_url(base)}/pulls/{number}"
        now = _iso(self.clock())
        return {
            "url": url,
            "id": number + 50000,
            "number": number,
            "state": pull["state"],
            "merged": pull["merged"],
            "title": f"pull request {number}",
            "user": self._user_json("contributor", 77),
            "created_at": now,
            "updated_at": now,
            "html_url": f"https://github.com/{base.full_name}/pull/{number}",
            "issue_url": f"{self._repo_url(base)}/issues/{number}",
            "head": {"ref": pull["head_ref"], "sha": pull["head_sha"], "repo": head_repo},
            "base": {"ref": "main", "sha": "0" * 40, "repo": self._repo_json(base)},
        }

    def _comment_json(self, full_name: str, comment: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/repos/{full_name}/issues/comments/{comment['id']}"
        now = _iso(self.clock())
        return {
            "id": comment["id"],
            "url": url,
            "html_url": f"https://github.com/{full_name}/pull/{comment['issue'][1]}",
            "issue_url": f"{self.url}/repos/{full_name}/issues/{comment['issue'][1]}",
            "body": comment["body"],
            "user": self._user_json("octocat", 1),
            "created_at": now,
            "updated_at": now,
        }
