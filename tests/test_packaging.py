"""A crawl-only install: the crawler, its pipelines and the sandbox import and run nothing of modeling's stack."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import sysconfig
import zipfile

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


def test_a_wheel_ships_the_templates_and_renders_the_report_without_the_source_tree(review_setup, tmp_path):
    """setuptools builds the wheel without a warning about the data folders, the wheel holds every template and
    static file, and the report renders from a fresh environment holding only the wheel (the dependencies come
    from this environment's site-packages by path, so the editable install's finder is not loaded)."""
    # built as pip builds it for a user (an isolated build with the current setuptools, whose warnings -v shows)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "--wheel-dir",
                            str(tmp_path / "wheel"), str(PROJECT_ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    output = built.stdout + built.stderr
    assert "running build_py" in output  # -v did show the backend's own output
    assert "BuildBackendWarning" not in output and "SetuptoolsDeprecationWarning" not in output, output[-5000:]
    wheel, = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    for folder in ("templates", "static"):
        expected = {f"modeling/{folder}/{f.name}" for f in (PROJECT_ROOT / "modeling" / folder).iterdir()
                    if f.is_file()}
        assert expected and expected <= shipped, expected - shipped
    assert not [name for name in shipped if "__pycache__" in name]

    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    site, = (fresh / "lib").glob("python*/site-packages")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # this environment's dependencies by path: a .pth line adds a folder without running that folder's .pth files
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    report = tmp_path / "report"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = ("import modeling, sys; from modeling import analyze; print(modeling.__file__, flush=True); "
              f"sys.exit(analyze.main(['--db', {str(review_setup.db)!r}, '--plots', {str(report)!r}]))")
    rendered = subprocess.run([str(fresh / "bin" / "python"), "-c", script], cwd=outside, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert rendered.stdout.splitlines()[0].startswith(str(site))
    assert "<table" in (report / "index.html").read_text(encoding="utf-8")


def test_an_editable_install_is_quiet_and_points_at_this_checkout(tmp_path):
    """`pip install -e .`, as the Makefile and the README run it, builds (in isolation, with the current setuptools)
    without a warning: -v shows the backend's own output, where setuptools prints its BuildBackendWarnings."""
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install",
                                "--no-deps", "-v", "-e", str(PROJECT_ROOT)], capture_output=True, text=True,
                               timeout=300)
    output = installed.stdout + installed.stderr
    assert installed.returncode == 0, output[-3000:]
    assert "running editable_wheel" in output  # -v did show the backend's own output
    assert "BuildBackendWarning" not in output and "SetuptoolsDeprecationWarning" not in output, output[-5000:]
    site, = (fresh / "lib").glob("python*/site-packages")
    pth, = site.glob("__editable__.*.pth")
    assert pth.read_text(encoding="utf-8").split() == [str(PROJECT_ROOT.resolve())]
