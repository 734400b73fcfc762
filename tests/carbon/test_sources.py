"""Every source against a real HTTP server on 127.0.0.1 serving each API's JSON shape."""

import datetime as dt
import logging
import os

import pytest

from greenops import carbon
from greenops.carbon.sources import LBS_PER_MWH_TO_G_PER_KWH

FAST = {"timeout_s": 0.5, "retries": 2, "backoff_s": 0.01}


def em(api, **kw):
    return carbon.ElectricityMaps(
        zone="US-MIDW-MISO", token="em-secret", base_url=api.url, **(FAST | kw)
    )


def test_electricitymaps_latest_history_forecast(api):
    s = em(api)
    assert s.current() == 437.0
    hist = s.history(24)
    assert len(hist) == 24 and hist[0].intensity_g_per_kwh == 501.0
    assert hist[0].time == dt.datetime(2024, 11, 30, 6, tzinfo=dt.timezone.utc)
    assert len(s.history(5)) == 6  # the newest point and the 5 hours before it
    fc = s.forecast(12)
    assert [p.intensity_g_per_kwh for p in fc] == [430 + 5 * h for h in range(12)]
    path, headers = api.requests[0]
    assert path.startswith("/v3/carbon-intensity/latest?zone=US-MIDW-MISO")
    assert headers["auth-token"] == "em-secret"


def test_electricitymaps_lat_lon_and_token_from_env(api, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", "em-secret")
    s = carbon.ElectricityMaps(lat=41.9, lon=-87.6, base_url=api.url, **FAST)
    assert s.current() == 437.0
    assert "lat=41.9&lon=-87.6" in api.requests[0][0]
    with pytest.raises(ValueError, match="zone or both lat and lon"):
        carbon.ElectricityMaps(lat=1.0)


def test_caching_for_the_update_period(api):
    s = em(api)
    s.current()
    s.current()
    assert len(api.requests) == 1
    s.update_period_s = 0
    s.current()
    assert len(api.requests) == 2


@pytest.mark.parametrize("failure", [("status", 500), ("status", 429), ("slow", 1.0)])
def test_transient_failures_are_retried(api, failure):
    api.fail["/v3/carbon-intensity/latest"] = [failure]
    assert em(api).current() == 437.0
    assert len(api.requests) == 2


def test_unauthorized_falls_back_with_one_warning_and_never_leaks_the_token(api, caplog):
    good = em(api)
    assert good.current() == 437.0
    good.update_period_s = 0
    api.fail["/v3/carbon-intensity/latest"] = [("status", 401)] * 3
    caplog.set_level(logging.DEBUG, logger="greenops.carbon")
    with pytest.warns(RuntimeWarning, match="HTTP 401") as rec:
        assert good.current() == 437.0  # the last known value
        assert good.current() == 437.0
    assert len(rec) == 1  # one warning, not one per call
    assert len([p for p, _ in api.requests if "latest" in p]) == 3  # 401 is not retried
    text = " ".join(str(w.message) for w in rec) + caplog.text
    assert "em-secret" not in text


def test_failure_without_history_gives_the_default(api):
    s = carbon.ElectricityMaps(
        zone="X", token="wrong", base_url=api.url, default_g_per_kwh=300.0, **FAST
    )
    with pytest.warns(RuntimeWarning):
        assert s.current() == 300.0
        assert s.forecast(4) == [] and s.history(4) == []


@pytest.mark.parametrize("body", [b"{not json", b'{"zone": "X"}', b"[]"])
def test_malformed_json_and_missing_fields_fall_back(api, body):
    s = em(api, default_g_per_kwh=123.0)
    api.fail["/v3/carbon-intensity/latest"] = [("body", body)]
    with pytest.warns(RuntimeWarning):
        assert s.current() == 123.0


def test_unreachable_server_falls_back(api):
    s = carbon.ElectricityMaps(
        zone="X", base_url="http://127.0.0.1:9", default_g_per_kwh=1.0, **FAST
    )
    with pytest.warns(RuntimeWarning):
        assert s.current() == 1.0


def test_watttime_login_moer_conversion_and_index(api):
    s = carbon.WattTime("CAISO_NORTH", username="u", password="p", base_url=api.url, **FAST)
    assert s.current() == pytest.approx(1000.0 * LBS_PER_MWH_TO_G_PER_KWH)
    fc = s.forecast(1)
    assert len(fc) == 12 and fc[-1].intensity_g_per_kwh == pytest.approx(945 * 0.45359237)
    assert s.index() == 87.0
    assert [p.split("?")[0] for p, _ in api.requests].count("/login") == 1  # token reused
    assert api.requests[0][1]["authorization"].startswith("Basic ")


def test_watttime_without_credentials_falls_back(api, monkeypatch):
    for var in ("WATTTIME_USERNAME", "WATTTIME_USER", "WATTTIME_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    s = carbon.WattTime("CAISO_NORTH", base_url=api.url, default_g_per_kwh=400.0, **FAST)
    with pytest.warns(RuntimeWarning, match="no credentials"):
        assert s.current() == 400.0


def test_uk_national_regional_and_forecast(api):
    national = carbon.UKGrid(base_url=api.url, **FAST)
    assert national.current() == 263.0  # actual when present
    fc = national.forecast(24)
    assert len(fc) == 47 and fc[0].intensity_g_per_kwh == 200.0  # forecast when no actual
    assert len(national.forecast(2)) == 4  # half-hourly
    assert "/fw24h" in api.requests[-1][0]
    pc = carbon.UKGrid(postcode="RG10", base_url=api.url, **FAST)
    assert pc.current() == 143.0
    with pytest.raises(ValueError, match="1..17"):
        carbon.UKGrid(region=18)


def test_constant():
    s = carbon.Constant(250.0)
    assert s.current() == 250.0 and all(p.intensity_g_per_kwh == 250 for p in s.forecast(5))


def test_trace_replay_holds_each_point_until_the_next(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "# source: test\nTime,Carbon Intensity\n2020-01-01 00:00:00,100\n"
        "2020-01-01 00:30:00,200\n2020-01-01 01:00:00,300\n"
    )
    t0 = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    clock = [t0 + dt.timedelta(minutes=45)]
    s = carbon.Trace(str(path), clock=lambda: clock[0])
    assert s.at(t0) == 100 and s.at(t0 + dt.timedelta(minutes=29)) == 100
    assert s.at(t0 + dt.timedelta(minutes=30)) == 200
    assert s.at(t0 + dt.timedelta(minutes=89)) == 300  # last point holds one step
    assert s.at(t0 + dt.timedelta(minutes=90)) is None
    assert s.current() == 200
    assert [p.intensity_g_per_kwh for p in s.forecast(1)] == [200, 300]
    shifted = carbon.Trace(str(path), shift_to_now=True)
    assert shifted.current() == 100


def test_trace_formats_from_real_data():
    here = os.path.join(os.path.dirname(__file__), "data")
    pts = carbon.load_trace(os.path.join(here, "electricitymaps_history_US-MIDW-MISO_sample.json"))
    assert len(pts) == 24 and pts[0].intensity_g_per_kwh == 501


def test_cli_now_and_forecast(api, capsys, monkeypatch):
    from greenops import cli

    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", "em-secret")
    base = ["--source", "electricitymaps", "--zone", "US-MIDW-MISO", "--base-url", api.url]
    assert cli.main(["carbon", "now", *base, "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["intensity_g_per_kwh"] == 437.0
    assert cli.main(["carbon", "forecast", *base, "--hours", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert (
        cli.main(["carbon", "now", "--source", "uk", "--postcode", "RG10", "--base-url", api.url])
        == 0
    )
    assert "143.0 gCO2eq/kWh" in capsys.readouterr().out
    assert cli.main(["carbon", "now", "--source", "constant", "--value", "42"]) == 0
    assert "42.0" in capsys.readouterr().out


def test_electricitymaps_without_a_token_names_it_and_sends_nothing(api, monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN", raising=False)
    monkeypatch.delenv("ELECTRICITYMAPS_API_KEY", raising=False)
    s = carbon.ElectricityMaps(zone="X", base_url=api.url, **FAST)
    with pytest.warns(RuntimeWarning, match="no API token.*ELECTRICITYMAPS_TOKEN"):
        assert s.current() is None
    assert api.requests == []


def test_bundled_trace_by_name_and_a_hint_when_it_is_over(capsys):
    from greenops import cli

    assert carbon.Trace("gb-2020-01", shift_to_now=True).current() > 0
    with pytest.raises(ValueError, match="bundled traces by name: fr-2020-01, gb-2020-01"):
        carbon.Trace("no-such-trace.csv")
    assert cli.main(["carbon", "now", "--source", "trace", "--trace", "gb-2020-01"]) == 1
    out = capsys.readouterr().out
    assert "unavailable" in out and "--shift" in out
    rc = cli.main(["carbon", "now", "--source", "trace", "--trace", "missing.csv"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
