"""A crawl-only install: the crawler, its pipelines and the sandbox import and run nothing of modeling's stack."""

from __future__ import annotations

import configparser
import subprocess
import sys

from shopstyle_spider.config import PROJECT_ROOT

# What the `modeling` extra brings; none of it may be needed to crawl.
MODELING_ONLY = ("tensorflow", "keras", "sklearn", "scipy", "joblib", "nltk", "numpy", "pandas", "matplotlib", "tqdm",
                 "modeling")

# Every module of the crawler imported with modeling's packages made unimportable, then `scrapy list` run the same
# way (it loads the settings, the spider and every component the settings name).
CRAWL_ONLY = f"""
import importlib, pkgutil, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {MODELING_ONLY!r}:
            raise ImportError(f"{{name}} is not part of a crawl-only install")
sys.meta_path.insert(0, Refuse())
import shopstyle_spider
for module in pkgutil.walk_packages(shopstyle_spider.__path__, "shopstyle_spider."):
    importlib.import_module(module.name)  # the demo too: it runs modeling in subprocesses
from scrapy.cmdline import execute
execute(["scrapy", "list"])
"""


def test_the_crawler_needs_nothing_of_the_modeling_extra():
    result = subprocess.run([sys.executable, "-c", CRAWL_ONLY], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["shopstyle"]


def test_a_plain_install_does_not_pull_tensorflow():
    setup = configparser.ConfigParser()
    setup.read(PROJECT_ROOT / "setup.cfg")
    base = setup["options"]["install_requires"].lower()
    assert not [name for name in ("tensorflow", "keras", "scikit-learn", "pandas", "numpy") if name in base]
    assert "tensorflow-cpu" in setup["options.extras_require"]["modeling"]
