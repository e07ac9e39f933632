"""What docs/operations.md promises of the API's answers: 404s that tell nothing apart, and
Retry-After on every 503 of an unreachable backend."""

from __future__ import annotations

from typing import Any

from tests.unit.test_web_api import ApiTestCase
from tornado_core.errors import StoreUnavailable


class TestPromises(ApiTestCase):
    def raw_get(self, path: str, token: str = "a") -> tuple[int, bytes]:
        response = self.fetch(path, headers={"Authorization": f"Bearer {self._token(token)}"})
        return response.code, response.body

    def test_unknown_foreign_and_tampered_ids_get_byte_identical_404s(self) -> None:
        job = {"task": "demo.echo", "payload": {"message": "x"}}
        _, receipt, _ = self.call("POST", "/v1/jobs", job, token="b")
        foreign = receipt["id"]  # globex's job
        tampered = foreign[:-1] + ("0" if foreign[-1] != "0" else "1")
        unknown = "0" * len(foreign)
        answers = {name: self.raw_get(f"/v1/jobs/{job_id}") for name, job_id in
                   (("unknown", unknown), ("foreign", foreign), ("tampered", tampered))}  # fmt: skip
        statuses = {status for status, _ in answers.values()}
        assert statuses == {404}
        bodies = {body.replace(job_id.encode(), b"<id>") for (_, body), job_id in
                  zip(answers.values(), (unknown, foreign, tampered), strict=True)}  # fmt: skip
        assert len(bodies) == 1, answers  # nothing tells another tenant's job from no job

    def test_a_job_store_outage_is_503_store_unavailable_with_retry_after(self) -> None:
        _, receipt, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "x"}})

        def store_down(*_args: Any, **_kwargs: Any) -> Any:
            raise StoreUnavailable("PostgreSQL is restarting")

        self.store.get = store_down  # type: ignore[method-assign]
        status, body, response = self.call("GET", f"/v1/jobs/{receipt['id']}")
        assert status == 503
        self.assert_error(status, body, "store_unavailable")
        assert response.headers["Retry-After"] == "5"
