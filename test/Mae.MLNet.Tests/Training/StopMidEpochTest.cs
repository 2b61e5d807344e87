using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Tests.FineTuning;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Tests.Input;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Training;

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

    /// <summary>Fine-tuning shares the engine: the same stop and exact resume on class folders (drop path and the
    /// augmentation draw randomness, so a wrong position or generator state would show).</summary>
    /// <summary>A stop that arrives after an epoch's last step (CI met it once, under load, through a SIGTERM) waits for
    /// the epoch's end: the run stops before the next epoch's first step at the end-of-epoch checkpoint, and resumes
    /// exactly. It used to write <c>checkpoint-0000-000006</c> ("0 epochs + 6 of 6 steps"), which resume refused as
    /// inconsistent.</summary>
    [TestMethod]
    public void CancelledAfterAnEpochsLastStepResumesExactly()
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        InputTestUtil.WriteJpegs(images, 24, minSide: 20, maxSide: 60);
        var straight = Run(images, dir.File("straight"), resume: false, 1, out var modelA);

        string cut = dir.File("cut");
        using var cts = new CancellationTokenSource();
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(images, cut, resume: false, 1, out var m, p => { if (p.Epoch == 0 && p.Step == 5) cts.Cancel(); }, cts.Token));   // step 6 of 6
        CollectionAssert.AreEqual(new[] { "checkpoint-0001.maeckpt" },
            Directory.GetFiles(cut, "*.maeckpt").Select(Path.GetFileName).ToArray(), "the end-of-epoch checkpoint and no position file");

        var resumed = Run(images, cut, resume: true, 1, out var modelC);
        StringAssert.EndsWith(resumed.ResumedFrom, "checkpoint-0001.maeckpt");
        CollectionAssert.AreEqual(straight.StepLosses.ToArray(), resumed.StepLosses.ToArray(), "per-step losses must repeat exactly");
        var pa = modelA.state_dict();
        var pc = modelC.state_dict();
        foreach (var (name, t) in pa) Assert.IsTrue(TensorAssert.Same(t, pc[name]), $"{name} differs after resume");
        modelA.Dispose();
        modelC.Dispose();
    }

    [TestMethod]
    public void FineTuningCancelledInsideAnEpochResumesExactly()
    {
        using var dir = new TempDir();
        string images = dir.File("images");
        InputTestUtil.WriteJpegs(Path.Combine(images, "a"), 12, seed0: 0, minSide: 20, maxSide: 40);
        InputTestUtil.WriteJpegs(Path.Combine(images, "b"), 12, seed0: 50, minSide: 20, maxSide: 40);
        MaeFineTuneResult Run(string checkpoints, bool resume, out Mae.MLNet.Model.VitClassifier model, Action<MaeFineTuneProgress>? onStep = null, CancellationToken ct = default)
        {
            var o = TinyFt.Options(2);
            o.CheckpointDir = checkpoints;
            o.Resume = resume;
            o.Augmentation = new Mae.MLNet.Input.MaeAugmentationOptions { OutputSize = 16, Channels = 3 };
            var source = MaeLabeledImageFileSource.FromClassFolders(images, new MaeImageInputOptions { Augmentation = { OutputSize = 16, Channels = 3 }, Workers = 2 });
            model = MaeFineTuner.FromScratch(TinyFt.Config with { InChannels = 3 }, 2, seed: 3);
            return new MaeFineTuner(o).Train(model, source, null, onStep is null ? null : new SyncFtProgress(onStep), ct);
        }

        var straight = Run(dir.File("straight"), false, out var modelA);
        Assert.AreEqual(6, straight.StepLosses.Count);   // 2 epochs × 24 images / batch 8
        using var cts = new CancellationTokenSource();
        var stopped = Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(dir.File("cut"), false, out var m, p => { if (!p.EndOfEpoch && p.Epoch == 1 && p.Step == 0) cts.Cancel(); }, cts.Token));
        StringAssert.Contains(stopped.Message, "finetune-0001-000001.maeft");

        var resumed = Run(dir.File("cut"), true, out var modelC);
        StringAssert.EndsWith(resumed.ResumedFrom, "finetune-0001-000001.maeft");
        CollectionAssert.AreEqual(straight.StepLosses.ToArray(), resumed.StepLosses.ToArray());
        foreach (var ((name, p), (_, q)) in modelA.named_parameters().Zip(modelC.named_parameters()))
            Assert.IsTrue(TensorAssert.Same(p, q), $"{name} differs after resume");
        modelA.Dispose();
        modelC.Dispose();
    }
}
