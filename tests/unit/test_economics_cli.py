"""`spotcheck economics`: bound, recommend and simulate, as a user sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from spotcheck.cli import main
from spotcheck.economics_cli import economics_group as economics

EXAMPLE_ARGS = ["--cost", "1", "--reward", "1.25", "--slash", "100", "--collusion", "0.1"]


def run(*args: str) -> str:
    result = CliRunner().invoke(economics, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_bound_workedExample_prints1Point10Percent() -> None:
    out = run("bound", *EXAMPLE_ARGS)

    assert "p > 1.10 % (0.010974)" in out
    assert "1 job in 91" in out


def test_bound_shortOptionsAndPercentCollusion_sameAnswer() -> None:
    out = run("bound", "-C", "1", "-R", "1.25", "-S", "100", "-r", "10%")

    assert "p > 1.10 %" in out


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ("5%", "Proposed p = 5 %: SAFE: 4.56x the minimum"),
        ("0.015", "Proposed p = 1.50 %: THIN"),
        ("1%", "Proposed p = 1 %: UNSAFE"),
    ],
)
def test_bound_proposedP_printsVerdict(p: str, expected: str) -> None:
    out = run("bound", *EXAMPLE_ARGS, "--p", p)

    assert expected in out
    assert ("gains" in out) == ("UNSAFE" in expected)


def test_bound_slashTooSmallForAnyP_saysSoAndHowMuchToRaise() -> None:
    out = run("bound", "--cost", "1", "--slash", "1", "--value-at-risk", "10", "-r", "0")

    assert "No sampling probability is enough" in out
    assert "Raise the slash S above 9.75" in out  # (C + V) / (1 - r) - R = 11 - 1.25


def test_bound_defaults_areTheProtocolDefaultsAndSafe() -> None:
    out = run("bound", "--p", "5%")

    assert "r = 30 %" in out
    assert "SAFE" in out


def test_recommend_printsEveryParameterWithItsReason() -> None:
    out = run("recommend", *EXAMPLE_ARGS, "--bounty-share", "0", "--fee-escrowed")

    for label in (
        "sampling probability p",
        "slash S",
        "challenger bond",
        "challenge window",
        "proof window",
        "unbonding delay",
    ):
        assert label in out
    assert "2.20 %" in out
    assert "as requested" in out


def test_recommend_valueAtRisk_raisesTheSlash() -> None:
    out = run("recommend", *EXAMPLE_ARGS, "--value-at-risk", "1000")

    assert "raised from 100" in out
    assert "sized to that value" in out


def test_simulate_workedExample_showsSignFlipAcrossTheBound() -> None:
    out = run("simulate", *EXAMPLE_ARGS, "--q", "1", "--p", "0.55%", "--p", "2.2%")

    assert "p > 1.10 %" in out
    lines = [line for line in out.splitlines() if "cheat 100 %" in line]
    assert len(lines) == 2
    assert lines[0].endswith("cheating pays")
    assert lines[1].endswith("cheating loses")


def test_simulate_defaultGrid_includesHonestBaselineAndProtocolDefaultP() -> None:
    out = run("simulate", *EXAMPLE_ARGS, "--jobs", "20000")

    assert "honest baseline" in out
    assert "     5 %" in out  # the protocol's default p is always in the default grid


def test_simulate_plot_writesPng(tmp_path: Path) -> None:
    out_png = tmp_path / "profit.png"

    out = run("simulate", *EXAMPLE_ARGS, "--jobs", "20000", "--q", "1", "--plot", str(out_png))

    assert f"plot written to {out_png}" in out
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_spotcheckEconomics_invalidParameter_endsAsOneLineError(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["economics", "bound", "--collusion", "1"])

    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: collusion fraction r must be in [0, 1), got 1.0\n"


def test_bound_unparsableProbability_isAUsageError() -> None:
    result = CliRunner().invoke(economics, ["bound", "--p", "five"])

    assert result.exit_code == 2
    assert "'five' is not a number or a percentage like 5%" in result.output


def test_stake_printsTheFormulaAndTheStakeNeeded() -> None:
    out = run("stake", "--throughput", "10", "--challenge-window", "600", "--proof-time", "600")

    assert "stake = jobs/s x (challengeWindow + proof time) x S" in out
    assert "Open jobs at once: 12,000 (10 x 1200 s)" in out
    assert "Stake needed:      1,200,000" in out


def test_stake_withAStake_saysWhetherItIsEnoughAndWhatItBacks() -> None:
    short = run("stake", "--throughput", "10", "--stake", "1000000")
    enough = run("stake", "--throughput", "10", "--stake", "1200000")

    assert "Stake 1,000,000 is NOT enough: it backs 8.333 jobs/s" in short
    assert "Stake 1,200,000 is enough: it backs 10 jobs/s" in enough


def test_stake_batchSize_roundsUpToWholeBatches() -> None:
    out = run("stake", "--throughput", "10", "--batch-size", "64")

    assert "Open jobs at once: 12,032 (10 x 1200 s, in whole batches)" in out


def test_recommend_throughput_addsTheStakeRow() -> None:
    out = run("recommend", *EXAMPLE_ARGS, "--throughput", "5")

    assert "stake at 5 jobs/s" in out
    assert "300,000" in out  # 5 jobs/s x (120 s + 480 s) x 100


def test_stake_invalidThroughput_endsAsOneLineError(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["economics", "stake", "--throughput", "0"])

    assert info.value.code == 1
    assert capsys.readouterr().err == "error: throughput (jobs/s) must be > 0, got 0.0\n"


# --- what the contracts do: threshold, checks, recommend sized to a stake --------------------


def test_threshold_defaults_batchJob_printsLossAndVStar() -> None:
    out = run("threshold")

    assert "A caught batch job (fee not escrowed)" in out
    assert "loss L                         75" in out
    assert "V* = d L - C = 1.625: a job worth more than this pays to cheat on." in out


def test_threshold_feeEscrowed_isAbout1Point7() -> None:
    out = run("threshold", "--fee-escrowed")

    assert "V* = d L - C = 1.66875" in out


def test_threshold_meanValueAndSimulate_showSelectiveProfitAndAgreement() -> None:
    out = run("threshold", "--mean-value", "1", "--simulate", "5000", "--batch-size", "16")

    assert "gains 0.196912 per job over honest work" in out  # e^-1.625
    assert "Simulated 80,000 jobs (cheating above V*, seed 0)" in out
    assert "closed form +0.197" in out


def test_threshold_lowDetection_saysEveryJobPays() -> None:
    out = run("threshold", "--p", "0.1%")

    assert "cheating pays on every job" in out


def test_checks_defaults_printsTheGameAndTheVerdict() -> None:
    out = run("checks")

    assert "diligent, per sampled job     +0.729" in out
    assert "lazy, per sampled job         -1.959" in out
    assert "Checking beats claiming blindly: K = 1 vs k (L + beta) = 3.689." in out
    assert "diligent checkers live on canary disputes" in out


def test_checks_noCanaries_checkingDoesNotBeatBlindClaiming() -> None:
    out = run("checks", "--canary-rate", "0")

    assert "Checking does NOT beat claiming blindly" in out


def test_checks_simulate_lazyLosesDiligentEarns() -> None:
    out = run("checks", "--simulate", "400000", "--seed", "1")

    diligent = next(line for line in out.splitlines() if line.strip().startswith("diligent +"))
    lazy = next(line for line in out.splitlines() if line.strip().startswith("lazy     -"))
    assert "closed form +0.036" in diligent
    assert "closed form -0.098" in lazy


def test_checks_invalidShare_endsAsOneLineError(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["economics", "checks", "--check-share", "60%"])

    assert info.value.code == 1
    assert capsys.readouterr().err == "error: check share must be >= 0 and <= 0.5, got 0.6\n"


def test_recommend_stake_capsTheSlashAndRaisesP() -> None:
    out = run("recommend", "-V", "1000", "--stake", "200000", "--open-jobs", "10")

    assert "slash S                        20000" in out
    assert "slash capped at 20000 = stake 200000 / 10 open job(s)" in out
    assert "above max sampling 0.1" in out
    assert "backs 10 open job(s) at this slash" in out


def test_recommend_stakeTooSmall_endsAsOneLineError(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["economics", "recommend", "-V", "1000", "--stake", "1000"])

    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "caps the slash at 1000" in err
    assert "it needs a stake of at least 3814" in err  # 2 x 1001 / 0.7 / 0.75, rounded up


def test_recommend_printsTheCheatThreshold() -> None:
    out = run("recommend")

    assert "cheat threshold V*" in out
    assert "a batch's fee is paid off the chain" in out


def test_checks_plot_writesPng(tmp_path: Path) -> None:
    out_png = tmp_path / "checks.png"

    out = run("checks", "--plot", str(out_png))

    assert f"plot written to {out_png}" in out
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_threshold_plot_writesPng(tmp_path: Path) -> None:
    out_png = tmp_path / "selective.png"

    out = run("threshold", "--plot", str(out_png))

    assert f"plot written to {out_png}" in out
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_recommend_printsALeafCheckFee_thatPaysAReRun() -> None:
    out = run("recommend")
    [line] = [x for x in out.splitlines() if "leaf check fee F" in x]
    fee = float(line.split()[4].replace(",", ""))
    assert 1.0 < fee < 1.25  # K / h(M) at p 3.9 %, 4 challengers, no canary income
    assert "leafCheckFee" in line


def test_checks_leafFee_printsTheLeafGame() -> None:
    out = run("checks", "--leaf-fee", "2")
    assert "the node deposits F = 2 per leaf" in out
    assert "diligent, per sampled leaf" in out and "break-even leaf fee F*" in out
