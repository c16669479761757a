"""Pull requests through PyGithub, for preview environments: read one or the open ones,
keep one comment per pull request up to date, retire a preview's deployments.

A ``GitHub`` of its own kind, so tokens travel and errors translate exactly as for the
rest of the GitHub calls (``github_errors.translated``).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import github

from ..preview_rules import Pull
from .github import GitHub
from .github_errors import GitHubError, translated

log = logging.getLogger(__name__)


def _pull(data: Any) -> Pull:
    head_repo = data.head.repo
    return Pull(
        number=data.number,
        open=data.state == "open",
        merged=bool(data.merged),
        head_sha=data.head.sha,
        head_ref=data.head.ref,
        head_repo=head_repo.full_name if head_repo is not None else None,
        head_clone_url=head_repo.clone_url if head_repo is not None else None,
        base_repo=data.base.repo.full_name,
    )


class PullRequests(GitHub):
    def pull(self, token: str, repository_url: str, number: int) -> Pull | None:
        """The pull request, or None when GitHub has no such number (404)."""
        name = self._repo_name(repository_url)
        with self._client(token) as gh:
            try:
                with translated(f"read pull request #{number} of {name}", "token", token):
                    return _pull(gh.get_repo(name).get_pull(number))
            except GitHubError as exc:
                if isinstance(exc.__cause__, github.UnknownObjectException):
                    return None
                raise

    def open_pulls(self, token: str, repository_url: str, limit: int) -> list[Pull]:
        """The open pull requests, newest first, at most ``limit`` of them."""
        name = self._repo_name(repository_url)
        with self._client(token) as gh, translated(f"list pull requests of {name}", "token", token):
            pulls = gh.get_repo(name).get_pulls(state="open", sort="created", direction="desc")
            return [_pull(p) for p in itertools.islice(pulls, limit)]  # [:n] fails when empty

    def upsert_comment(
        self, token: str, repository_url: str, number: int, marker: str, body: str
    ) -> None:
        """The pull request's one comment that starts with ``marker`` made ``body``:
        edited in place when there is one (untouched when it says that already), else
        posted."""
        name = self._repo_name(repository_url)
        with self._client(token) as gh:
            issue = gh.get_repo(name).get_issue(number)
            with translated(f"comment on #{number} of {name}", "token", token):
                for existing in issue.get_comments():
                    if (existing.body or "").startswith(marker):
                        if existing.body != body:
                            existing.edit(body)
                        return
                issue.create_comment(body)

    def deactivate(self, token: str, repository_url: str, environment: str) -> None:
        """Mark the environment's deployments inactive: the preview is gone."""
        name = self._repo_name(repository_url)
        with self._client(token) as gh:
            repo = gh.get_repo(name)
            with translated(f"retire deployments of {environment} on {name}", "token", token):
                for deployment in repo.get_deployments(environment=environment):
                    if deployment.environment == environment:
                        deployment.create_status("inactive", description="preview removed")
        log.info("GitHub deployments of %s on %s marked inactive", environment, name)
