"""Fixtures for the IM end-to-end tests: a parleyd per test (the broker tests' fixtures), IM enabled."""
import importlib.util
import pathlib
import sys

_broker_tests = pathlib.Path(__file__).resolve().parents[1] / "broker"
sys.path.insert(0, str(_broker_tests))
_spec = importlib.util.spec_from_file_location("broker_conftest", _broker_tests / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

Broker = _mod.Broker
make_config = _mod.make_config
make_broker = _mod.make_broker
