using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.TrainHost;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training;

/// <summary>FCMAE (ConvNeXt V2) pre-trains on the shared engine with the same options type: a run stopped in its second
/// epoch and resumed repeats the uninterrupted run's losses and weights bit for bit; the checkpoint gives back the
/// model and its encoder; options that only fit the ViT are refused up front.</summary>
[TestClass]
public class FcmaePretrainTest
{
    /// <summary>64 px (2×2 cells of 32 px), four stages 8 wide, one block each; decoder 8 wide.</summary>
    static readonly ConvNextV2Config Config = ConvNextV2Config.Atto with
    {
        ImageSize = 64, Dims = new[] { 8, 8, 8, 8 }, Depths = new[] { 1, 1, 1, 1 }, DecoderEmbedDim = 8,
    };

    static MaePretrainResult Run(string dir, int epochs, bool resume, out Fcmae model, Action<MaePretrainProgress>? onStep = null, CancellationToken ct = default)
    {
        var o = TinyRun.Options(epochs, dir);
        o.Resume = resume;
        o.MaskRatio = 0.5;
        using var source = MaeImageSource.FromArrays(TinyRun.Images(12, size: 64), 3, 64, 64);
        model = MaePretrainer.CreateModel(Config, o);
        return new MaePretrainer(o).Train(model, source, onStep is null ? null : new SyncProgress(onStep), ct);
    }

    [TestMethod]
    public void StoppedAndResumedRunRepeatsTheUninterruptedOneExactly()
    {
        using var full = new TempDir();
        using var cut = new TempDir();
        var a = Run(full.Path, 2, resume: false, out var modelA);
        using var cts = new CancellationTokenSource();
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            Run(cut.Path, 2, resume: false, out var m, p => { if (p.Epoch == 1 && p.Step == 1) cts.Cancel(); }, cts.Token));
        var c = Run(cut.Path, 2, resume: true, out var modelC);
        // In-memory sources resume inside an epoch (the one epoch-plan protocol): the stop after step 2 of epoch 2
        // wrote that position, and the resume continues from it.
        StringAssert.EndsWith(c.ResumedFrom, "checkpoint-0001-000002.maeckpt");
        Assert.AreEqual(6, a.StepLosses.Count);
        CollectionAssert.AreEqual(a.StepLosses.ToArray(), c.StepLosses.ToArray(), "per-step losses must repeat exactly");
        Assert.IsTrue(a.StepLosses.Distinct().Count() > 1, "losses move");
        var pa = modelA.state_dict();
        foreach (var (name, t) in modelC.state_dict()) Assert.IsTrue(TensorAssert.Same(t, pa[name]), $"{name} differs after resume");

        string last = MaePretrainCheckpoint.PathFor(full.Path, 2);
        Assert.AreEqual(Config, MaePretrainCheckpoint.ReadHeader(last).ConvNextConfig);
        using var loaded = MaePretrainCheckpoint.LoadFcmae(last);
        using (var any = MaePretrainCheckpoint.Load(last)) Assert.IsInstanceOfType<Fcmae>(any);   // what `mae reconstruct` reads
        foreach (var (name, t) in loaded.state_dict()) Assert.IsTrue(TensorAssert.Same(t, pa[name]), name);
        using var encoder = loaded.ToEncoder();
        using var scope = NewDisposeScope();
        encoder.eval();
        Assert.AreEqual(8, encoder.ForwardFeatures(rand(2, 3, 64, 64)).shape[1]);
        Assert.ThrowsExactly<Mae.MLNet.Training.MaeTrainingCheckpointException>(() => MaePretrainCheckpoint.LoadModel(last));
        modelA.Dispose();
        modelC.Dispose();
    }

    /// <summary>A checkpoint whose header claims a huge ConvNeXt around small weights is refused before any model is
    /// built from the header (it would allocate gigabytes).</summary>
    [TestMethod]
    public void HeaderClaimingAnotherConvNextIsRefusedBeforeBuilding()
    {
        using var dir = new TempDir();
        using var small = new Fcmae(Config);
        var header = new MaePretrainCheckpointHeader { ConvNextConfig = ConvNextV2Config.Huge, EpochsCompleted = 1 };
        string json = System.Text.Json.JsonSerializer.Serialize(header, Mae.MLNet.Training.MaeTrainingCheckpoint.Json);
        string path = Mae.MLNet.Tests.Interop.HostileFiles.WriteCheckpoint(Path.Combine(dir.Path, "checkpoint-0001.maeckpt"), "MAECKPT1", json, small);
        var e = Assert.ThrowsExactly<Mae.MLNet.Training.MaeTrainingCheckpointException>(() => MaePretrainCheckpoint.LoadFcmae(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "dims [352, 704, 1408, 2816]");
        StringAssert.Contains(e.Message, "dims [8, 8, 8, 8]");
    }

    [TestMethod]
    public void ViTOnlyOptionsAndImpossibleRatiosAreRefused()
    {
        var o = TinyRun.Options(1);
        o.Objective = MaeObjective.Contrastive;
        Assert.ThrowsExactly<ArgumentException>(() => MaePretrainer.CreateModel(Config, o));
        o = TinyRun.Options(1);
        o.MaskRatio = 0.9;   // 4 cells: floor(4·0.1) = 0 kept
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaePretrainer.CreateModel(Config, o));
        StringAssert.Contains(e.Message, "keeps no 32-px cell of the model's 4");
        // A source of another size than the model is refused before any step.
        o = TinyRun.Options(1);
        o.MaskRatio = 0.5;
        using var model = MaePretrainer.CreateModel(Config, o);
        using var source = MaeImageSource.FromArrays(TinyRun.Images(8, size: 32), 3, 32, 32);
        Assert.ThrowsExactly<ArgumentException>(() => new MaePretrainer(o).Train(model, source));
    }
}
