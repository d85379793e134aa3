"""The multi-task bench report: its sections and tables from a hand-built BenchResult, and a
headless Chromium that loads the page and decodes every image."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_diabetes, load_digits

from unlabeled.bench.report import render, write_report
from unlabeled.bench.result import BenchResult

SETTINGS = [("5-shot", None, 5), ("1%", 0.01, None), ("10%", 0.1, None), ("100%", 1.0, None)]


def _row(task, model, probe, setting, fraction, shots, metric, hib, mean, n_train, n_classes=None):
    rng = np.random.default_rng(zlib.crc32(f"{task}/{model}/{probe}/{setting}".encode()))
    scores = (mean + rng.normal(0, 0.003 * max(1.0, abs(mean)), 3)).tolist()
    n_labels = shots * n_classes if shots else max(1, round(fraction * n_train))
    return {
        "task": task,
        "model": model,
        "baseline": model in ("raw", "random-init", "supervised"),
        "probe": probe,
        "setting": setting,
        "fraction": fraction,
        "shots": shots,
        "metric": metric,
        "higher_is_better": hib,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "scores": scores,
        "metrics": {
            metric: {"mean": float(np.mean(scores)), "std": float(np.std(scores))},
            "macro_f1" if hib else "rmse": {"mean": float(np.mean(scores)) * 0.97, "std": 0.01},
        },
        "n_labels": n_labels,
        "params": [{"C": 1.0}] * 3,
    }


def _fake_run(root, name, losses):
    run = root / name
    run.mkdir()
    (run / "config.json").write_text("{}")
    if losses:
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": i, "loss": v}) + "\n" for i, v in enumerate(losses))
        )
    return str(run)


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> BenchResult:
    """Digits (classification, accuracy, with a 5-shot setting) and diabetes (regression, mae,
    fractions only); two pretrained models and the three baselines; t-SNE inputs from real
    features (digits pixels, diabetes measurements) warped per model."""
    root = tmp_path_factory.mktemp("runs")
    runs = [_fake_run(root, "simclr", list(np.linspace(5, 1, 40))), _fake_run(root, "mae", [])]
    rows = []
    # digits: accuracy, mae-model best everywhere but at 100% with the linear probe (raw wins there)
    acc = {"simclr": 0.80, "mae": 0.86, "raw": 0.70, "random-init": 0.40}
    for probe in ("linear", "knn", "finetune"):
        models = [*acc, "supervised"] if probe == "finetune" else list(acc)
        for setting, fraction, shots in SETTINGS:
            lift = {None: 0.0, 0.01: 0.02, 0.1: 0.06, 1.0: 0.1}[fraction]
            for m in models:
                mean = acc.get(m, 0.6) + lift
                if probe == "linear" and fraction == 1.0 and m == "raw":
                    mean = 0.985
                rows.append(_row("digits", m, probe, setting, fraction, shots, "accuracy", True, mean, 1437, 10))
    # diabetes: mae (lower is better); simclr lowest in every column
    err = {"simclr": 40.0, "mae": 48.0, "raw": 55.0, "random-init": 70.0}
    for probe in ("linear", "knn"):
        for setting, fraction, _ in SETTINGS[1:]:
            for m, e in err.items():
                rows.append(_row("diabetes", m, probe, setting, fraction, None, "mae", False, e / (1 + fraction), 353))
    settings = {
        "runs": runs,
        "seeds": 3,
        "probes": ["linear", "knn", "finetune"],
        "fractions": [0.01, 0.1, 1.0],
        "shots": [5],
        "seconds": 12.3,
        "suite": "toy <suite>",
        "tasks": {
            "digits": {
                "train": 1437,
                "test": 360,
                "split": "stratified 80/20, seed 0",
                "kind": "classification",
                "metric": "accuracy",
            },
            "diabetes": {
                "train": 353,
                "test": 89,
                "split": "random 80/20, seed 0",
                "kind": "regression",
                "metric": "mae",
            },
        },
    }
    rng = np.random.default_rng(0)
    digits = load_digits()
    keep = rng.choice(len(digits.target), 300, replace=False)
    dx, dy = digits.data[keep].astype(np.float32), digits.target[keep]
    diabetes = load_diabetes()
    bx, by = diabetes.data[:200].astype(np.float32), diabetes.target[:200].astype(np.float32)
    warp = rng.normal(size=(64, 32)).astype(np.float32)
    embeddings = {
        ("digits", "simclr"): (np.tanh(dx @ warp / 20), dy),
        ("digits", "mae"): (dx @ warp, dy),
        ("digits", "raw"): (dx, dy),
        ("diabetes", "simclr"): (np.tanh(bx * 10), by),
        ("diabetes", "raw"): (bx, by),
    }
    # unified scores given, not computed: here only their table is under test (the score
    # itself, branch by branch, is in test_unified_score.py)
    unified = {"simclr": 0.62, "random-init": -0.8, "mae": 0.91, "supervised": 0.3, "raw": 0.0}
    return BenchResult(rows, settings, embeddings=embeddings, unified=unified)


@pytest.fixture(scope="module")
def page(result) -> str:
    return render(result)


class Tables(HTMLParser):
    """Every <table> in a page as rows of cells: (text, bold, class of the cell, class of the row),
    with the id of the enclosing <section>; and every <img> as its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict[str, str]] = []
        self._section: str | None = None
        self._row_cls = ""
        self._cell: list | None = None
        self._bold = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id")
        elif tag == "table":
            self.tables.append({"id": a.get("id"), "class": a.get("class"), "section": self._section, "rows": []})
        elif tag == "tr":
            self._row_cls = a.get("class") or ""
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = ["", False, a.get("class") or "", self._row_cls]
        elif tag == "b" and self._cell is not None:
            self._cell[1] = True
        elif tag == "img":
            self.images.append({k: v or "" for k, v in attrs})

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def parse(page: str) -> Tables:
    p = Tables()
    p.feed(page)
    return p


def _check_structure(doc: Tables) -> None:
    ids = {t["id"] for t in doc.tables}
    assert {"unified", "tasks"} <= ids
    results = [t for t in doc.tables if t["class"] == "results"]
    assert {t["section"] for t in results} == {"task-digits", "task-diabetes"}
    classes = [i.get("class") for i in doc.images]
    assert classes.count("curves") == 2 and classes.count("embedding-map") == 2 and classes.count("loss") == 1


def test_sections_tables_and_images_are_present(page):
    doc = parse(page)
    _check_structure(doc)
    assert "toy &lt;suite&gt;" in page and "<suite>" not in page  # escaped
    assert "validation split of the labelled subset" in page and "scored once per final model" in page
    assert "12 s" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page  # self-contained
    for img in doc.images:
        data = img["src"].removeprefix("data:image/png;base64,")
        assert data != img["src"]
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100 and im.height > 100


def test_unified_table_sorts_best_first(page):
    table = next(t for t in parse(page).tables if t["id"] == "unified")
    body = table["rows"][1:]
    assert [r[1][0] for r in body] == ["mae", "simclr", "supervised", "raw", "random-init"]
    assert [r[2][0] for r in body] == ["0.910", "0.620", "0.300", "0.000", "-0.800"]
    assert body[-1][1][3] == "baseline" and body[0][1][3] == "model"


def _results(page: str, task: str) -> tuple[list[str], list[list[tuple]]]:
    table = next(t for t in parse(page).tables if t["class"] == "results" and t["section"] == f"task-{task}")
    head = [re.sub(r"\d+(–\d+)? labels$", "", c[0]) for c in table["rows"][0]]
    return head, table["rows"][1:]


def test_best_cell_is_bold_for_lower_is_better(page):
    head, body = _results(page, "diabetes")
    assert head == ["model", "probe", "1%", "10%", "100%"]
    for col in range(2, 5):
        bold = [(r[0][0], r[1][0]) for r in body if r[col][1]]
        assert bold in ([("simclr", "linear")], [("simclr", "knn")]), bold  # the lowest mae, not the highest
    worst = next(r for r in body if r[0][0] == "random-init" and r[1][0] == "linear")
    assert not any(c[1] for c in worst[2:]) and worst[0][3] == "baseline"


def test_best_cell_is_bold_for_higher_is_better_even_a_baseline(page):
    head, body = _results(page, "digits")
    assert head == ["model", "probe", "1%", "5-shot", "10%", "100%"]  # fewest labels first: 14, 50, 144, 1437
    bold_100 = [(r[0][0], r[1][0]) for r in body if r[5][1]]
    assert bold_100 == [("raw", "linear")]
    # pretrained models before baselines within each probe; supervised only with finetune
    assert [r[0][0] for r in body if r[1][0] == "linear"] == ["simclr", "mae", "raw", "random-init"]
    assert [r[0][0] for r in body if r[1][0] == "finetune"][-1] == "supervised"
    assert all(re.fullmatch(r"0\.\d{4} ± 0\.\d{4}", c[0]) for r in body for c in r[2:])


@pytest.mark.parametrize("kind", ["single", "fractions-only", "shots-only"])
def test_render_is_robust_to_small_results(result, kind, tmp_path):
    rows = [r for r in result.rows if r["task"] == "diabetes" and r["model"] in ("simclr", "raw")]
    if kind == "single":
        rows = [r for r in rows if r["model"] == "simclr" and r["probe"] == "linear" and r["setting"] == "10%"]
    if kind == "shots-only":
        rows = [
            dict(r, setting="5-shot", fraction=None, shots=5)
            for r in result.rows
            if r["task"] == "digits" and r["setting"] == "5-shot"
        ]
    settings = {"runs": [], "seeds": 3, "suite": None}  # no task details
    path = write_report(BenchResult(rows, settings), tmp_path / "out" / "report.html")
    doc = parse(path.read_text(encoding="utf-8"))
    assert len([t for t in doc.tables if t["class"] == "results"]) == 1
    assert [i["class"] for i in doc.images] == ["curves"]
    assert "unified" not in {t["id"] for t in doc.tables}


# ---------------------------------------------------------------------------------------
# Chromium: the page as a browser sees it. The report has no script; the test adds one to a
# copy, which, once the page has loaded, draws every image on a canvas, counts its decoded
# and its non-white pixels, and writes what it found into the DOM for --dump-dom.

CHECK = """<script>
window.addEventListener('load', () => {
  const out = [];
  for (const img of document.images) {
    // once drawn on a canvas: opaque pixels (matplotlib's PNGs are opaque; what a broken or
    // truncated PNG failed to decode stays transparent) and, of those, the ones not white
    let opaque = -1, inked = -1;
    try {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      opaque = 0; inked = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] < 255) continue;
        opaque++;
        if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) inked++;
      }
    } catch (e) { opaque = -1; }
    const [w, h] = [img.naturalWidth, img.naturalHeight];
    out.push({cls: img.className, complete: img.complete, w, h, opaque, inked});
  }
  const pre = document.createElement('pre');
  pre.id = 'image-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium_dom(url: str, profile: str) -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed; run `scripts/setup.sh test` (it installs Debian's chromium package)")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_the_report_and_decodes_every_image(page, tmp_path):
    assert "<script" not in page
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"))
    dom = chromium_dom(checked.as_uri(), str(tmp_path / "profile"))
    doc = parse(dom)
    _check_structure(doc)
    found = re.search(r"<pre id=\"image-check\">(.*?)</pre>", dom, re.S)
    assert found, "the image check did not run in Chromium:\n" + dom[-500:]
    images = json.loads(html.unescape(found.group(1)))
    assert len(images) == len(doc.images) == 5
    for img in images:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img
        assert img["opaque"] == img["w"] * img["h"], img  # every pixel decoded
        assert img["inked"] > 0.01 * img["w"] * img["h"], img  # and not a blank figure


def test_one_seed_prints_its_score_without_a_zero_spread(result, tmp_path):
    """With one seed there is no spread to report: the text table and the page print the mean
    alone, where ``± 0.0000`` would claim a certainty nobody measured."""
    rows = [
        dict(r, scores=r["scores"][:1], mean=r["scores"][0], std=0.0)
        for r in result.rows
        if r["task"] == "diabetes" and r["model"] in ("simclr", "raw")
    ]
    one = BenchResult(rows, {"runs": [], "seeds": 1, "suite": None})
    text = one.table()
    assert "one seed" in text and "±" not in text
    _, body = _results(write_report(one, tmp_path / "out" / "report.html").read_text(encoding="utf-8"), "diabetes")
    cells = [c[0] for r in body for c in r[2:]]
    assert cells and all(re.fullmatch(r"-?\d+\.\d+", c) for c in cells)
    three = BenchResult(result.rows, {"runs": [], "seeds": 3, "suite": None}).table()
    assert "mean ± std over 3 seeds" in three and "±" in three.splitlines()[-1]


def test_unified_table_ranks_a_model_scored_in_fewer_cells_last_and_says_so():
    from unlabeled.bench.report_tables import unified_table

    table = unified_table({"a": 0.9, "b": 0.5, "raw": 0.0}, {"raw"}, {"a": 3, "b": 9, "raw": 9})
    assert [r["model"] for r in table] == ["b", "raw", "a"]
    assert [r["cells"] for r in table] == ["9 of 9", "9 of 9", "3 of 9"]
    assert all(r["cells"] is None for r in unified_table({"a": 0.9, "raw": 0.0}, {"raw"}, {"a": 9, "raw": 9}))
