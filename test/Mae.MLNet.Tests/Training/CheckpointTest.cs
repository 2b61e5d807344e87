using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Mae.MLNet.TrainHost;
using static TorchSharp.torch;

using Mae.MLNet.Tests.Model;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Training;

[TestClass]
public class CheckpointTest
{
    static MaePretrainResult Run(string dir, int epochs, bool resume, out MaskedAutoencoder model, Action<MaePretrainProgress>? onStep = null, CancellationToken ct = default)
    {
        var o = TinyRun.Options(epochs, dir);
        o.Resume = resume;
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        model = MaePretrainer.CreateModel(TinyRun.Config, o);
        return new MaePretrainer(o).Train(model, source, onStep is null ? null : new SyncProgress(onStep), ct);
    }

    [TestMethod]
    public void StoppedAfterOneEpochAndResumedGivesIdenticalLossesAndWeights()
    {
        using var full = new TempDir();
        using var cut = new TempDir();
        var a = Run(full.Path, 3, resume: false, out var modelA);

        // Stop in the middle of epoch 1 (0-based), after checkpoint-0001 was written: the in-memory source follows the
        // epoch plan, so the run checkpoints its position (3 steps into epoch 1) and resumes there.
        using var cts = new CancellationTokenSource();
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(cut.Path, 3, resume: false, out var m, p => { if (p.Epoch == 1 && p.Step == 2) cts.Cancel(); }, cts.Token));
        CollectionAssert.AreEqual(new[] { MaeRunFolderLock.FileName, "checkpoint-0001-000003.maeckpt", "checkpoint-0001.maeckpt" },
            Directory.GetFiles(cut.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());

        var c = Run(cut.Path, 3, resume: true, out var modelC);
        StringAssert.EndsWith(c.ResumedFrom, "checkpoint-0001-000003.maeckpt");
        Assert.AreEqual(18, a.StepLosses.Count);
        CollectionAssert.AreEqual(a.StepLosses.ToArray(), c.StepLosses.ToArray(), "per-step losses must repeat exactly");
        CollectionAssert.AreEqual(a.EpochLosses.ToArray(), c.EpochLosses.ToArray());
        Assert.AreEqual(a.OptimizerSteps, c.OptimizerSteps);
        // Losses must actually move (the comparison is not between constants).
        Assert.IsTrue(a.EpochLosses[2] < a.EpochLosses[0], string.Join(", ", a.EpochLosses));

        var pa = modelA.state_dict();
        var pc = modelC.state_dict();
        foreach (var (name, t) in pa) Assert.IsTrue(TensorAssert.Same(t, pc[name]), $"{name} differs after resume");

        // The checkpoint header and LoadModel round-trip what was trained.
        var header = MaePretrainCheckpoint.ReadHeader(MaePretrainCheckpoint.PathFor(full.Path, 3));
        Assert.AreEqual(3, header.EpochsCompleted);
        Assert.AreEqual(18, header.GlobalStep);
        Assert.AreEqual(6, header.StepsPerEpoch);
        Assert.AreEqual(TinyRun.Config, header.Config);
        Assert.AreEqual(7, header.Options.Seed);
        using var loaded = MaePretrainCheckpoint.LoadModel(MaePretrainCheckpoint.PathFor(full.Path, 3));
        foreach (var (name, t) in loaded.state_dict()) Assert.IsTrue(TensorAssert.Same(t, pa[name]), name);
        using (var any = MaePretrainCheckpoint.Load(MaePretrainCheckpoint.PathFor(full.Path, 3)))
            Assert.IsInstanceOfType<MaskedAutoencoder>(any);
        modelA.Dispose();
        modelC.Dispose();
    }

    [TestMethod]
    public void CorruptTruncatedOrForeignCheckpointsAreReportedBeforeTraining()
    {
        using var dir = new TempDir();
        Run(dir.Path, 1, resume: false, out var m).ToString();
        m.Dispose();
        var good = MaePretrainCheckpoint.PathFor(dir.Path, 1);
        var bytes = File.ReadAllBytes(good);

        void Expect(byte[] content, params string[] inMessage)
        {
            var path = MaePretrainCheckpoint.PathFor(dir.Path, 2);
            File.WriteAllBytes(path, content);
            var e = Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => Run(dir.Path, 3, resume: true, out var model));
            StringAssert.Contains(e.Message, path);
            foreach (var s in inMessage) StringAssert.Contains(e.Message, s);
            Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => MaePretrainCheckpoint.ReadHeader(path));
        }

        Expect(bytes[..(bytes.Length / 2)], "truncated");
        Expect(bytes[..20], "truncated");
        var flipped = (byte[])bytes.Clone();
        flipped[bytes.Length / 2] ^= 0x10;
        Expect(flipped, "checksum");
        var foreign = (byte[])bytes.Clone();
        "PK\x03\x04"u8.CopyTo(foreign);
        Expect(foreign, "signature");

        // The valid epoch-1 checkpoint still resumes once the bad one is gone.
        File.Delete(MaePretrainCheckpoint.PathFor(dir.Path, 2));
        var r = Run(dir.Path, 2, resume: true, out var resumed);
        resumed.Dispose();
        Assert.AreEqual(12, r.StepLosses.Count);
        StringAssert.EndsWith(r.ResumedFrom, "checkpoint-0001.maeckpt");
    }

    [TestMethod]
    public void CheckpointOfAnotherModelIsRejected()
    {
        using var dir = new TempDir();
        Run(dir.Path, 1, resume: false, out var m);
        m.Dispose();
        var o = TinyRun.Options(2, dir.Path);
        o.Resume = true;
        using var source = MaeImageSource.FromArrays(TinyRun.Images(8), 3, 16, 16);
        using var other = MaePretrainer.CreateModel(TinyRun.Config with { Depth = 1 }, o);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new MaePretrainer(o).Train(other, source));
        StringAssert.Contains(e.Message, "different model configuration");
    }

    [TestMethod]
    public void WritingLeavesNoTemporaryFilesAndReplacesAtomically()
    {
        using var dir = new TempDir();
        Run(dir.Path, 2, resume: false, out var m);
        m.Dispose();
        CollectionAssert.AreEqual(new[] { MaeRunFolderLock.FileName, "checkpoint-0001.maeckpt", "checkpoint-0002.maeckpt" },
            Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        // A stale temporary from a killed writer is ignored by FindLatest and cleaned up on the next run.
        File.WriteAllBytes(Path.Combine(dir.Path, ".checkpoint-0003.maeckpt.tmp-1-abc"), new byte[10]);
        Assert.AreEqual(MaePretrainCheckpoint.PathFor(dir.Path, 2), MaePretrainCheckpoint.FindLatest(dir.Path));
        Run(dir.Path, 3, resume: true, out var m2);
        m2.Dispose();
        Assert.IsFalse(Directory.GetFiles(dir.Path).Any(f => f.Contains(".tmp-")));
    }
}
