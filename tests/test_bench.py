"The bench/ suite: alternation, paired ratios, targets, the summary table, and a tiny real run (seconds)"
import json, sys
from conftest import ROOT
sys.path.insert(0, str(ROOT))
from bench import _timing as T
from bench.__main__ import summary_markdown
from bench import masking_overhead, wrn_mfu


def test_alternate_reverses_order_and_warms_up():
    calls = []
    times = T.alternate({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}, repeats=3, warmup=1)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    assert {k: len(v) for k, v in times.items()} == {'a': 3, 'b': 3}


def test_compare_paired_ratio_and_target():
    row = T.compare('case', 'A', 'B', [1.0, 2.0, 4.0], [2.0, 3.0, 4.0], ('>=', 1.2), unit='img/s', per=100)
    assert row['ratio'] == {'min': 1.0, 'median': 1.5, 'max': 2.0}
    assert row['met'] is True and row['a_value']['median'] == 50.0
    assert T.target_met(1.04, ('<=', 1.03)) is False and T.target_met(1.0, None) is None
    assert T.fmt_value(0.0123, 's') == '12.3 ms' and T.fmt_value(22100, 'img/s') == '22.1k img/s'


def test_summary_gathers_devices_and_escapes_pipes(tmp_path):
    row = T.compare('x | y', 'A', 'B', [1.0], [1.1], ('<=', 1.05))
    res = T.result('fake', 'cpu', [row], what='test', quick=False)
    (tmp_path / 'fake_cpu.json').write_text(json.dumps(res))
    md = summary_markdown(tmp_path)
    assert '## CPU' in md and '## CUDA' not in md
    assert '| fake | x \\| y | A: 1 s | B: 1.1 s | 1.1 [1.1–1.1] | ≤ 1.05 | **no** |' in md


def test_masking_overhead_tiny_run(tmp_path):
    r = masking_overhead.run(quick=True, steps=3, repeats=2, out=tmp_path / 'm.json')
    assert [row['b'] for row in r['rows']] == ['DST', 'DST', 'DST + update']
    assert all(row['ratio']['median'] > 0 for row in r['rows']) and abs(r['dst_final_density'] - 0.2) < 1e-3
    assert json.loads((tmp_path / 'm.json').read_text())['machine']['device'] == 'cpu'


def test_wrn_mfu_skips_on_cpu_and_knows_peaks(tmp_path):
    r = wrn_mfu.run(quick=True, device='cpu', out=tmp_path / 'w.json')
    assert r['rows'] == [] and 'GPU only' in r['skipped']
    assert wrn_mfu.peak_tflops('NVIDIA H200') == 989.0 and wrn_mfu.peak_tflops('NVIDIA A100-SXM4-80GB') == 312.0
    assert wrn_mfu.peak_tflops('NVIDIA H100 PCIe') == 756.0 and wrn_mfu.peak_tflops('Tesla T4') is None
