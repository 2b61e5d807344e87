using Mae.MLNet.Input;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>
/// A cancelled pre-training run on a folder source (a planned source: what <c>mae pretrain</c> trains on) stops at the
/// next accumulation boundary, writes a checkpoint of its position inside the epoch (<c>checkpoint-NNNN-SSSSSS</c>),
/// and a resume from it continues exactly: per-step losses and final weights equal an uninterrupted run's bit for bit.
/// </summary>
[TestClass]
public class StopMidEpochTest
{
    static MaePretrainResult Run(string images, string dir, bool resume, int accum, out Mae.MLNet.Model.MaskedAutoencoder model,
        Action<MaePretrainProgress>? onStep = null, CancellationToken ct = default)
    {
        var o = TinyRun.Options(2, dir);
        o.Resume = resume;
        o.AccumIter = accum;
        var source = MaeImageFileSource.FromFolder(images, new MaeImageInputOptions { Augmentation = { OutputSize = 16 }, Workers = 2 });
        model = MaePretrainer.CreateModel(TinyRun.Config, o);
        return new MaePretrainer(o).Train(model, source, onStep is null ? null : new SyncProgress(onStep), ct);
    }

    [TestMethod]
    [DataRow(1, 1, 2, "checkpoint-0001-000003.maeckpt")]   // cancelled after the third step of epoch 1
    [DataRow(2, 0, 2, "checkpoint-0000-000004.maeckpt")]   // cancelled after the third step of epoch 0: one more to the accumulation boundary
    public void CancelledInsideAnEpochResumesExactly(int accum, int stopEpoch, int stopAfterStep, string expectedFile)
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        InputTestUtil.WriteJpegs(images, 24, minSide: 20, maxSide: 60);

        var straight = Run(images, dir.File("straight"), resume: false, accum, out var modelA);
        Assert.AreEqual(12, straight.StepLosses.Count);   // 2 epochs × 24 images / batch 4

        string cut = dir.File("cut");
        using var cts = new CancellationTokenSource();
        var stopped = Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(images, cut, resume: false, accum, out var m, p => { if (p.Epoch == stopEpoch && p.Step == stopAfterStep) cts.Cancel(); }, cts.Token));
        StringAssert.Contains(stopped.Message, expectedFile);
        Assert.IsTrue(File.Exists(Path.Combine(cut, expectedFile)), string.Join(", ", Directory.GetFiles(cut).Select(Path.GetFileName)));
        Assert.AreEqual(Path.Combine(cut, expectedFile), MaePretrainCheckpoint.FindLatest(cut));

        var resumed = Run(images, cut, resume: true, accum, out var modelC);
        StringAssert.EndsWith(resumed.ResumedFrom, expectedFile);
        CollectionAssert.AreEqual(straight.StepLosses.ToArray(), resumed.StepLosses.ToArray(), "per-step losses must repeat exactly");
        CollectionAssert.AreEqual(straight.EpochLosses.ToArray(), resumed.EpochLosses.ToArray());
        Assert.AreEqual(straight.OptimizerSteps, resumed.OptimizerSteps);
        Assert.AreNotEqual(straight.StepLosses[0], straight.StepLosses[^1]);   // the losses move: not a comparison of constants
        var pa = modelA.state_dict();
        var pc = modelC.state_dict();
        foreach (var (name, t) in pa) Assert.IsTrue(TensorAssert.Same(t, pc[name]), $"{name} differs after resume");
        modelA.Dispose();
        modelC.Dispose();
    }

    [TestMethod]
    public void AMidEpochCheckpointIsRefusedByASourceThatCannotStartInsideAnEpoch()
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        InputTestUtil.WriteJpegs(images, 24, minSide: 20, maxSide: 60);
        using var cts = new CancellationTokenSource();
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(images, dir.File("cut"), resume: false, 1, out var m, p => { if (p.Epoch == 0 && p.Step == 1) cts.Cancel(); }, cts.Token));

        var o = TinyRun.Options(2, dir.File("cut"));
        o.Resume = true;
        using var arrays = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);   // not planned: no SkipBatches
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new MaePretrainer(o).Train(model, arrays));
        StringAssert.Contains(e.Message, "checkpoint-0000-000002.maeckpt");
        StringAssert.Contains(e.Message, "cannot start inside an epoch");
    }
}
