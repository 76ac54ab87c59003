#!/usr/bin/python3
"""Runs one test of the Eclipse Paho interoperability suites against a broker.

The suites set their globals (host, port, topic lists) in their own __main__ block and hand sys.argv
to unittest, so we import the module, set the same globals, and run the named test.
Usage: paho_runner.py SUITE_DIR {client_test|client_test5} TEST_NAME HOST PORT
"""
import sys
import unittest


def main():
    suite_dir, module_name, test_name, host, port = sys.argv[1:6]
    sys.path.insert(0, suite_dir)
    mod = __import__(module_name)
    mod.host = host
    mod.port = int(port)
    if module_name == "client_test5":
        prefix = "client_test5/"
        mod.topic_prefix = prefix
        mod.topics = [prefix + t for t in ["TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA"]]
        mod.wildtopics = [prefix + t for t in ["TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#"]]
    else:
        mod.topics = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
        mod.wildtopics = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
    mod.nosubscribe_topics = ("test/nosubscribe",)
    suite = unittest.defaultTestLoader.loadTestsFromName("Test." + test_name, mod)
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
