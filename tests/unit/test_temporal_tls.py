"""How the Temporal connection settings turn into the SDK's TLS (``nudge.temporal.tls_for``): none
for the dev server, the system's roots for an API key alone, the files for mutual TLS, and a
named refusal for a half-set pair or a file that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig

from nudge.errors import ConfigurationError
from nudge.settings import Settings
from nudge.temporal import tls_for


def test_the_dev_server_has_no_tls_and_an_api_key_alone_uses_the_system_roots() -> None:
    assert tls_for(Settings()) is False
    cloud = tls_for(Settings(temporal_api_key=SecretStr("k")))
    assert isinstance(cloud, TLSConfig) and cloud.client_cert is None and cloud.server_root_ca_cert is None


def test_mutual_tls_reads_the_files_and_names_the_server(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_bytes(name.encode())
    tls = tls_for(
        Settings(
            temporal_tls_cert=tmp_path / "c.pem",
            temporal_tls_key=tmp_path / "k.pem",
            temporal_tls_ca=tmp_path / "ca.pem",
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"c.pem",
        b"k.pem",
        b"ca.pem",
        "temporal.internal",
    )


def test_a_certificate_without_its_key_or_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(ConfigurationError, match="go together"):
        tls_for(Settings(temporal_tls_cert=tmp_path / "c.pem"))
    with pytest.raises(ConfigurationError, match=r"NUDGE_TEMPORAL_TLS_KEY: cannot read .*missing\.pem"):
        tls_for(Settings(temporal_tls_cert=tmp_path / "c.pem", temporal_tls_key=tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="NUDGE_TEMPORAL_TLS is false"):
        tls_for(Settings(temporal_tls=False, temporal_tls_ca=tmp_path / "c.pem"))
    with pytest.raises(ConfigurationError, match="clear text"):
        tls_for(Settings(temporal_tls=False, temporal_api_key=SecretStr("k")))
