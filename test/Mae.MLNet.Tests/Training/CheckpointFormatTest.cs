using System.Text.Json;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Training;
using Mae.MLNet.TrainHost;
using TorchSharp;
using TorchSharp.Modules;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training;

[TestClass]
public class CheckpointFormatTest
{
    static MaePretrainResult Run(string dir, int epochs, bool resume, out MaskedAutoencoder model)
    {
        var o = TinyRun.Options(epochs, dir);
        o.Resume = resume;
        using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
        model = MaePretrainer.CreateModel(TinyRun.Config, o);
        return new MaePretrainer(o).Train(model, source);
    }

    /// <summary>
    /// A checkpoint as format 1 wrote it (before the flat buffer: TorchSharp's per-parameter AdamW state), made from
    /// the state of a format-2 checkpoint of the same run, resumes to exactly the losses and weights of the
    /// uninterrupted run; its header and weights read as before; an unknown version is refused naming it.
    /// </summary>
    [TestMethod]
    public void FormatOneCheckpointsStillResumeExactlyAndUnknownVersionsAreRefused()
    {
        using var full = new TempDir();
        using var old = new TempDir();
        var a = Run(full.Path, 2, resume: false, out var modelA);

        // Rewrite checkpoint-0001 in format 1.
        var o = TinyRun.Options(2, old.Path);
        var v2 = MaePretrainCheckpoint.PathFor(full.Path, 1);
        var v1 = MaePretrainCheckpoint.PathFor(old.Path, 1);
        using (var model = new MaskedAutoencoder(TinyRun.Config))
        using (var r = MaePretrainCheckpoint.Training.Open(v2))
        {
            r.LoadModel(model);
            var split = MaeWeightDecay.Split(model, model.NoWeightDecay());
            var groups = new[] { new MaeParamGroup("decay", 1, o.WeightDecay, split.Decay), new MaeParamGroup("no_decay", 1, 0, split.NoDecay) };
            using var flat = new MaeFlatParameters(groups);
            using var adamW = new MaeFlatAdamW(flat, o.Beta1, o.Beta2, o.Epsilon);
            r.LoadOptimizer(adamW, flat);
            using var rng = r.ReadRngState();
            var (steps, epochs) = r.ReadHistory();
            Assert.AreEqual(6, adamW.StepCount);

            using var legacy = optim.AdamW(groups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter),
                lr: 1e-3, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon, weight_decay: g.WeightDecay)).ToList());
            var states = legacy.state_dict().State;
            long offset = 0;
            using (no_grad())
                foreach (var (state, (_, p)) in states.Zip(groups.SelectMany(g => g.Parameters)))
                {
                    var s = (AdamW.State)state;
                    long n = p.numel();
                    s.exp_avg.copy_(adamW.ExpAvg.narrow(0, offset, n).view(p.shape));
                    s.exp_avg_sq.copy_(adamW.ExpAvgSq.narrow(0, offset, n).view(p.shape));
                    s.step = adamW.StepCount;
                    offset += n;
                }
            var header = MaePretrainCheckpoint.ReadHeader(v2) with { FormatVersion = 1 };
            MaePretrainCheckpoint.Container.Save(v1, w =>
            {
                w.Write(JsonSerializer.Serialize(header, MaeTrainingCheckpoint.Json));
                model.save(w);
                legacy.save_state_dict(w);
                rng.Save(w);
                w.Write(steps.Count);
                foreach (var l in steps) w.Write(l);
                w.Write(epochs.Count);
                foreach (var l in epochs) w.Write(l);
            });
        }
        Assert.AreEqual(1, MaePretrainCheckpoint.ReadHeader(v1).FormatVersion);
        using (var loaded = MaePretrainCheckpoint.LoadModel(v1))
        using (var expected = MaePretrainCheckpoint.LoadModel(v2))
            foreach (var (name, t) in expected.state_dict()) Assert.IsTrue(TensorAssert.Same(t, loaded.state_dict()[name]), name);

        var c = Run(old.Path, 2, resume: true, out var modelC);
        StringAssert.EndsWith(c.ResumedFrom, "checkpoint-0001.maeckpt");
        CollectionAssert.AreEqual(a.StepLosses.ToArray(), c.StepLosses.ToArray(), "per-step losses after resuming from format 1");
        Assert.AreEqual(a.OptimizerSteps, c.OptimizerSteps);
        foreach (var (name, t) in modelA.state_dict()) Assert.IsTrue(TensorAssert.Same(t, modelC.state_dict()[name]), $"{name} differs");
        Assert.AreEqual(MaePretrainCheckpoint.FormatVersion, MaePretrainCheckpoint.ReadHeader(MaePretrainCheckpoint.PathFor(old.Path, 2)).FormatVersion);
        modelA.Dispose();
        modelC.Dispose();

        // A version this build does not know is refused before anything loads, naming the versions.
        var future = MaePretrainCheckpoint.PathFor(old.Path, 3);
        var h = MaePretrainCheckpoint.ReadHeader(v2) with { FormatVersion = 99 };
        MaePretrainCheckpoint.Container.Save(future, w => w.Write(JsonSerializer.Serialize(h, MaeTrainingCheckpoint.Json)));
        var e = Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => MaePretrainCheckpoint.ReadHeader(future));
        StringAssert.Contains(e.Message, "format version 99");
        StringAssert.Contains(e.Message, "versions 1 to 2");
    }
}
