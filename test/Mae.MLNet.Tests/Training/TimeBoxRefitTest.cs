using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Training;

namespace Mae.MLNet.Tests.Training;

/// <summary>
/// A time box that holds on a machine whose load changes: at each epoch end the epochs still to run are re-fitted to
/// the time left at the last epoch's pace (MaeTimeBudget.Refit), the rest of the cosine stretched or squeezed so the lr
/// stays continuous and ends at its floor (MaeLrPlan), and the checkpoints carry that schedule so a resume continues it.
/// The clock is scripted: simulated seconds per step, advanced by the progress reports.
/// </summary>
[TestClass]
public class TimeBoxRefitTest
{
    const double Peak = 1e-3, Min = 1e-5;

    static double Cosine(double phase) => Min + (Peak - Min) * 0.5 * (1 + Math.Cos(Math.PI * phase));

    [TestMethod]
    public void WithoutARefitThePlanIsTheReferenceScheduleBitForBit()
    {
        var plan = new MaeLrPlan { Epochs = 37, WarmupEpochs = 3.7 };
        for (double e = 0; e < 37; e += 0.37)
            Assert.AreEqual(MaeLrSchedule.At(e, Peak, Min, 3.7, 37), plan.At(e, Peak, Min));   // exact, not within a tolerance
    }

    [TestMethod]
    public void ARefitKeepsTheLrContinuousAndEndsAtTheFloor()
    {
        var plan = new MaeLrPlan { Epochs = 10, WarmupEpochs = 1 };
        // Squeezed at epoch 4 to end at 6: phase 3/9 at epoch 4, then linear to 1 at epoch 6.
        var squeezed = plan.EndingAt(4, 6);
        Assert.AreEqual(plan.At(4, Peak, Min), squeezed.At(4, Peak, Min), 1e-15);
        Assert.AreEqual(Cosine(1.0 / 3 + 2.0 / 3 * 0.5), squeezed.At(5, Peak, Min), 1e-15);
        Assert.AreEqual(Min, squeezed.At(6, Peak, Min), 1e-15);
        // Stretched again at epoch 5 to end at 9: continuous there, the floor at 9.
        var stretched = squeezed.EndingAt(5, 9);
        Assert.AreEqual(squeezed.At(5, Peak, Min), stretched.At(5, Peak, Min), 1e-15);
        Assert.AreEqual(Min, stretched.At(9, Peak, Min), 1e-15);
        for (int i = 0; i < 40; i++)
            Assert.IsTrue(stretched.At(5 + (i + 1) / 10.0, Peak, Min) < stretched.At(5 + i / 10.0, Peak, Min), $"not decreasing at {5 + i / 10.0}");
        // The warm-up is kept; inside it only the end moves (and stays past the warm-up).
        var early = new MaeLrPlan { Epochs = 10, WarmupEpochs = 2.5 }.EndingAt(1, 2);
        Assert.AreEqual((3, 2.5), (early.Epochs, early.WarmupEpochs));
        Assert.AreEqual(Peak * 1.5 / 2.5, early.At(1.5, Peak, Min), 1e-18);
        Assert.AreEqual(Min, early.At(3, Peak, Min), 1e-15);
        Assert.AreSame(plan, plan.EndingAt(4, 10));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => plan.EndingAt(4, 3));
    }

    [TestMethod]
    public void RefitSqueezesWhatWouldOverrunAndStretchesIntoRealRoomWithinTheCap()
    {
        Assert.AreEqual(4 + 2, MaeTimeBudget.Refit(4, 12, 33, maxEpochs: 20, planned: 10));     // busier: 2.75 epochs fit
        Assert.AreEqual(4 + 10, MaeTimeBudget.Refit(4, 3, 33, maxEpochs: 20, planned: 10));     // quieter: 11 fit, 95 % of them 10.45
        Assert.AreEqual(14, MaeTimeBudget.Refit(4, 2.9, 33, maxEpochs: 20, planned: 14));       // 11.4 fit, 10 planned: the band, kept
        Assert.AreEqual(14, MaeTimeBudget.Refit(4, 3.3, 33, maxEpochs: 20, planned: 14));       // exactly 10 fit: kept
        Assert.AreEqual(20, MaeTimeBudget.Refit(4, 0.5, 33, maxEpochs: 20, planned: 10));       // capped
        Assert.AreEqual(4, MaeTimeBudget.Refit(4, 12, 5, maxEpochs: 20, planned: 10));          // nothing fits: ends now
        Assert.AreEqual(4, MaeTimeBudget.Refit(4, 12, -30, maxEpochs: 20, planned: 10));        // past the deadline
        Assert.AreEqual(10, MaeTimeBudget.Refit(4, double.NaN, 33, maxEpochs: 20, planned: 10)); // no pace measured
        // The pace: the median of the last three epochs.
        Assert.AreEqual(6, MaeTimeBudget.RecentPace(new[] { 6.0 }));
        Assert.AreEqual(9, MaeTimeBudget.RecentPace(new[] { 6.0, 12 }));
        Assert.AreEqual(6, MaeTimeBudget.RecentPace(new[] { 30.0, 6, 6, 12 }));   // one slow epoch does not count
        Assert.AreEqual(12, MaeTimeBudget.RecentPace(new[] { 6.0, 6, 12, 12 }));  // a lasting change does
    }

    /// <summary>Simulated seconds per step by epoch: 1 s for epochs 0–2, then 2 s (the machine got busier).</summary>
    sealed class Script
    {
        public readonly DateTime Start = new(2026, 12, 5, 12, 0, 0, DateTimeKind.Utc);
        public double Seconds;
        public readonly List<MaePretrainProgress> Reports = new();
        public DateTime Now() => Start.AddSeconds(Seconds);
        public SyncProgress Progress(Action<MaePretrainProgress>? also = null) => new(p =>
        {
            if (p.EndOfEpoch) return;
            Seconds += p.Epoch < 3 ? 1 : 2;
            Reports.Add(p);
            also?.Invoke(p);
        });
    }

    static MaePretrainOptions Options(string dir, Script script, bool timeBoxed)
    {
        var o = TinyRun.Options(10, dir);
        (o.MinLearningRate, o.LogEvery) = (Min, 1);
        if (!timeBoxed) return o;
        // A 63-second deadline (0.9 × 70 s), 6 steps per epoch, planned for 10 epochs at the first pace, at most 20.
        o.TimePlan = new MaeTimeBudget.TimePlan(70 / 60.0, 1, 6, 10, 1, 20, false, false) { StartUtc = script.Start };
        o.Clock = script.Now;
        return o;
    }

    static MaePretrainResult Train(MaePretrainOptions o, SyncProgress progress, out Mae.MLNet.Model.MaskedAutoencoder model, CancellationToken ct = default)
    {
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        model = MaePretrainer.CreateModel(TinyRun.Config, o);
        return new MaePretrainer(o).Train(model, source, progress, ct);
    }

    [TestMethod]
    public void ABusierMachineEndsTheRunInsideTheBoxAndAResumeContinuesTheRefittedSchedule()
    {
        using var dir = new TempDir();
        var a = new Script();
        var straight = Train(Options(dir.File("a"), a, timeBoxed: true), a.Progress(), out var modelA);

        // Epochs of 6 s, then of 12 s from the fourth on, against a 63-second deadline; the first epoch's pace (start-up)
        // is not counted. At the end of epoch 4 (30 s, paces 6, 6, 12: median 6) 5.5 epochs fit in the 33 s left and 6 are planned: squeezed to 9. At the end of epoch 5
        // (42 s, median 12) 1.75 fit: squeezed to 6, done at 54 s ≤ 63.
        Assert.AreEqual(6, straight.EpochsCompleted);
        Assert.AreEqual(36, straight.StepLosses.Count);
        Assert.AreEqual(54, a.Seconds);
        CollectionAssert.AreEqual(Enumerable.Repeat(10, 24).Concat(Enumerable.Repeat(9, 6)).Concat(Enumerable.Repeat(6, 6)).ToArray(),
            a.Reports.Select(p => p.Epochs).ToArray());
        // Each step's lr (closed form): the reference schedule for 10 epochs up to epoch 4; then the cosine from its phase
        // there (3/9) to 1 at epoch 9, so 7/15 at epoch 5; then from 7/15 to 1 at epoch 6.
        foreach (var p in a.Reports)
        {
            double e = p.Epoch + p.Step / 6.0;
            double expected = p.Epoch < 4 ? MaeLrSchedule.At(e, Peak, Min, 1, 10)
                : p.Epoch < 5 ? Cosine(1.0 / 3 + 2.0 / 3 * (e - 4) / 5)
                : Cosine(7.0 / 15 + 8.0 / 15 * (e - 5));
            Assert.AreEqual(expected, p.LearningRate, 1e-15, $"lr at epoch {e:F3}");
        }
        Assert.IsTrue(a.Reports[^1].LearningRate < 3e-5, "the last step is near the floor");

        // Stopped in epoch 5 (after the re-fit), then resumed as `mae pretrain --resume` does: without the box, with the
        // options' 10 epochs. The checkpoint's schedule wins: 6 epochs, the same steps, the same weights.
        var b = new Script();
        using var cts = new CancellationTokenSource();
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            Train(Options(dir.File("b"), b, timeBoxed: true), b.Progress(p => { if (p.Epoch == 5 && p.Step == 1) cts.Cancel(); }), out var m, cts.Token));
        var resumedOptions = Options(dir.File("b"), b, timeBoxed: false);
        resumedOptions.Resume = true;
        int before = b.Reports.Count;
        var resumed = Train(resumedOptions, b.Progress(), out var modelB);
        StringAssert.EndsWith(resumed.ResumedFrom, "checkpoint-0005-000002.maeckpt");
        Assert.AreEqual(6, resumed.EpochsCompleted);
        CollectionAssert.AreEqual(straight.StepLosses.ToArray(), resumed.StepLosses.ToArray(), "per-step losses must repeat exactly");
        var after = b.Reports.Skip(before).ToList();
        Assert.AreEqual(4, after.Count);   // steps 3–6 of epoch 6
        foreach (var p in after)
            Assert.AreEqual(a.Reports.Single(x => x.GlobalStep == p.GlobalStep).LearningRate, p.LearningRate, $"lr at step {p.GlobalStep}");
        foreach (var ((name, p), (_, q)) in modelA.named_parameters().Zip(modelB.named_parameters()))
            Assert.IsTrue(TensorAssert.Same(p, q), $"{name} differs after resume");
        modelA.Dispose();
        modelB.Dispose();
    }

    [TestMethod]
    public void APlanForSeveralRanksIsRefused()
    {
        var o = TinyRun.Options(10);
        o.TimePlan = new MaeTimeBudget.TimePlan(1, 1, 6, 10, 1, 20, false, false);
        o.Collective = new TwoRanks();
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => o.Validate(TinyRun.Config)).Message, "2 ranks");
        o.Collective = null;
        o.Epochs = 21;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => o.Validate(TinyRun.Config)).Message, "cap (20)");
    }

    sealed class TwoRanks : IMaeCollective
    {
        public int Rank => 0;
        public int WorldSize => 2;
        public int LocalRank => 0;
        public string Name => "two ranks, never used";
        public void AllReduceMean(TorchSharp.torch.Tensor tensor) => Assert.Fail("validation needs no all-reduce");
        public void Broadcast(TorchSharp.torch.Tensor tensor, int root = 0) => Assert.Fail("validation needs no broadcast");
        public void Barrier() { }
        public void Abort(string message) => Assert.Fail($"validation must not abort: {message}");
    }
}
