using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Training;
using TorchSharp;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.FineTuning;

[TestClass]
public class FineTuneEngineTest
{
    [TestMethod]
    public void LayerDecayGroupsFollowParamGroupsLrd()
    {
        // util/lr_decay.py for depth 2: num_layers = 3; cls_token/pos_embed/patch_embed → 0, blocks.i → i + 1, rest → 3;
        // scale = 0.75^(3 − id); no decay for 1-D parameters and the no-decay names.
        using var model = new VitClassifier(TinyFt.Config, 3);
        model.Encoder.pos_embed.requires_grad = true;
        var groups = MaeLayerDecay.ParamGroups(model, 0.05, 0.75);
        // get_layer_id_for_vit, name by name.
        Assert.AreEqual(3, model.NumLayers);
        foreach (var (name, id) in new[] { ("cls_token", 0), ("pos_embed", 0), ("patch_embed.proj.bias", 0), ("blocks.0.norm1.weight", 1),
                     ("blocks.1.attn.qkv.weight", 2), ("fc_norm.bias", 3), ("head.weight", 3) })
            Assert.AreEqual(id, model.LayerId(name), name);
        using (var mae = new MaskedAutoencoder(TinyFt.Config))
        {
            Assert.AreEqual(2, mae.LayerId("blocks.1.mlp.fc2.bias"));
            Assert.AreEqual(3, mae.LayerId("decoder_blocks.0.attn.qkv.weight"), "the decoder is after the last layer, as the reference's else branch");
            Assert.AreEqual(3, mae.LayerId("mask_token"));
        }
        CollectionAssert.AreEqual(new[]
        {
            "layer_0_no_decay", "layer_0_decay", "layer_1_no_decay", "layer_1_decay", "layer_2_no_decay", "layer_2_decay",
            "layer_3_no_decay", "layer_3_decay",
        }, groups.Select(g => g.Name).ToArray());
        foreach (var g in groups)
        {
            Assert.AreEqual(Math.Pow(0.75, 3 - g.LayerId), g.LrScale, 1e-15, g.Name);
            Assert.AreEqual(g.Name.EndsWith("_no_decay") ? 0.0 : 0.05, g.WeightDecay, g.Name);
        }
        string GroupOf(string p) => groups.Single(g => g.Parameters.Any(x => x.Name == p)).Name;
        Assert.AreEqual("layer_0_no_decay", GroupOf("cls_token"));
        Assert.AreEqual("layer_0_no_decay", GroupOf("pos_embed"));
        Assert.AreEqual("layer_0_decay", GroupOf("patch_embed.proj.weight"));
        Assert.AreEqual("layer_0_no_decay", GroupOf("patch_embed.proj.bias"));
        Assert.AreEqual("layer_1_decay", GroupOf("blocks.0.attn.qkv.weight"));
        Assert.AreEqual("layer_1_no_decay", GroupOf("blocks.0.norm1.weight"));
        Assert.AreEqual("layer_2_decay", GroupOf("blocks.1.mlp.fc2.weight"));
        Assert.AreEqual("layer_3_no_decay", GroupOf("fc_norm.weight"));
        Assert.AreEqual("layer_3_decay", GroupOf("head.weight"));
        Assert.AreEqual("layer_3_no_decay", GroupOf("head.bias"));
        Assert.AreEqual(model.parameters().Count(), groups.Sum(g => g.Parameters.Count));
        // The frozen pos_embed of a model that does not train it is left out.
        model.Encoder.pos_embed.requires_grad = false;
        Assert.IsFalse(MaeLayerDecay.ParamGroups(model, 0.05, 0.75).Any(g => g.Parameters.Any(p => p.Name == "pos_embed")));
    }

    [TestMethod]
    public void HeadStartsTruncNormalWithStd2em5AndZeroBias()
    {
        torch.manual_seed(0);
        using var model = new VitClassifier(TinyFt.Config with { EmbedDim = 256, NumHeads = 4 }, 1000);
        using var w = model.head.weight.detach().to(float64);
        double n = w.numel(), std = w.std().item<double>(), mean = w.mean().item<double>();
        Assert.AreEqual(2e-5, std, 2e-5 * 5 / Math.Sqrt(2 * n), "std of 256 000 draws");
        Assert.AreEqual(0, mean, 2e-5 * 5 / Math.Sqrt(n));
        Assert.AreEqual(0f, model.head.bias!.abs().max().item<float>());
        // Bounds in absolute units, as PyTorch: std 1 truncated to [−0.5, 0.5].
        using var t = empty(100000);
        VitClassifier.TruncNormal(t, std: 1, a: -0.5, b: 0.5);
        Assert.IsTrue(t.abs().max().item<float>() <= 0.5f);
        // Var of N(0,1) truncated to [−a, a]: 1 − 2a·φ(a)/(2Φ(a) − 1); a = 0.5 → 0.0791…
        double phi = Math.Exp(-0.125) / Math.Sqrt(2 * Math.PI), z = 0.3829249225480262; // 2Φ(0.5) − 1
        Assert.AreEqual(1 - 2 * 0.5 * phi / z, t.var().item<float>(), 0.002);
    }

    [TestMethod]
    public void FirstAdamWStepMovesEachLayerByItsScaledLearningRate()
    {
        // One AdamW step from zero state moves an element by lr·g/(|g| + ε) ≈ lr (weight decay off): the largest move
        // of each layer's weights (elements with |g| ≫ ε) is lr × 0.5^(depth + 1 − layer id).
        var o = TinyFt.Options(1);
        o.WarmupEpochs = 0; o.LearningRate = 1e-3; o.WeightDecay = 0; o.LayerDecay = 0.5; o.BatchSize = 8; o.DropPath = 0;
        using var source = TinyFt.Source(8);
        using var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 1);
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var result = new MaeFineTuner(o).Train(model, source);
        Assert.AreEqual(1, result.OptimizerSteps);
        var after = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());
        foreach (var (name, id) in new[] { ("patch_embed.proj.weight", 0), ("blocks.0.attn.qkv.weight", 1), ("blocks.1.mlp.fc1.weight", 2), ("head.weight", 3), ("cls_token", 0) })
        {
            using var moved = (after[name] - before[name]).abs().max();
            Assert.AreEqual(1e-3 * Math.Pow(0.5, 3 - id), moved.item<float>(), 1e-3 * Math.Pow(0.5, 3 - id) * 0.01, name);
        }
        // pos_embed is trained by default (as the reference's timm ViT) but the flag is restored afterwards.
        Assert.IsFalse(model.Encoder.pos_embed.requires_grad);
        Assert.IsTrue((after["pos_embed"] - before["pos_embed"]).abs().max().item<float>() > 0);
        foreach (var t in before.Values) t.Dispose();
    }

    [TestMethod]
    public void DropPathIsIdentityAtEvalAndDropsWholeSamplesWithTheRightExpectation()
    {
        using var x = ones(20000, 3, 2);
        using (var y = DropPath.Apply(x, 0.25, training: false)) Assert.IsTrue(y.eq(x).all().item<bool>());
        torch.manual_seed(5);
        using var d = DropPath.Apply(x, 0.25, training: true);
        using var perSample = d.flatten(1);
        using var rowMin = perSample.amin(new long[] { 1 });
        using var rowMax = perSample.amax(new long[] { 1 });
        Assert.IsTrue(rowMin.eq(rowMax).all().item<bool>(), "a sample's branch is dropped or kept as a whole");
        var values = rowMin.data<float>().ToArray();
        Assert.IsTrue(values.All(v => v == 0f || Math.Abs(v - 1 / 0.75f) < 1e-6), "kept branches are scaled by 1/(1 − p)");
        double dropped = values.Count(v => v == 0f) / (double)values.Length;
        double sigma = Math.Sqrt(0.25 * 0.75 / values.Length);
        Assert.AreEqual(0.25, dropped, 4 * sigma, "drop fraction");
        Assert.AreEqual(1.0, values.Average(), 4 * sigma / 0.75, "expectation preserved");

        // In the model: linearly increasing rates; eval forward ignores them; train forward is stochastic.
        using var model = new VitClassifier(TinyFt.Config with { Depth = 3 }, 3) { DropPathRate = 0.2 };
        CollectionAssert.AreEqual(new[] { 0.0, 0.1, 0.2 }, Enumerable.Range(0, 3).Select(i => Math.Round(model.DropPathProbability(i), 12)).ToArray());
        using var images = rand(4, 1, 16, 16);
        model.eval();
        using var evalOut = model.forward(images);
        model.DropPathRate = 0;
        using var plain = model.forward(images);
        Assert.IsTrue(evalOut.eq(plain).all().item<bool>());
        model.train();
        using var trainPlain = model.forward(images);
        Assert.IsTrue(trainPlain.allclose(plain), "rate 0 in training = eval");
        model.DropPathRate = 0.5;
        using var a = model.forward(images);
        using var b = model.forward(images);
        Assert.IsFalse(a.eq(b).all().item<bool>(), "drop path draws a new mask per forward");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.DropPathRate = 1.0);
    }

    [TestMethod]
    public void LabelSmoothingAndSoftTargetLossesMatchClosedForms()
    {
        float[,] z = { { 1.0f, -0.5f, 2.0f, 0.25f }, { -1.0f, 0.0f, 0.5f, 3.0f } };
        long[] y = { 2, 0 };
        double s = 0.1, expected = 0;
        for (int i = 0; i < 2; i++)
        {
            double lse = Math.Log(Enumerable.Range(0, 4).Sum(k => Math.Exp(z[i, k])));
            double nll = lse - z[i, y[i]];
            double meanNeg = Enumerable.Range(0, 4).Average(k => lse - z[i, k]);
            expected += ((1 - s) * nll + s * meanNeg) / 2;
        }
        using var logits = tensor(new float[] { 1.0f, -0.5f, 2.0f, 0.25f, -1.0f, 0.0f, 0.5f, 3.0f }, new long[] { 2, 4 });
        using var labels = tensor(y);
        using var ls = MaeClassificationLoss.LabelSmoothingCrossEntropy(logits, labels, s);
        Assert.AreEqual(expected, ls.item<float>(), 1e-6);
        // With lam = 1 the mixup target is the smoothed one-hot, and soft-target CE equals label smoothing CE.
        using var target = MaeClassificationLoss.MixupTarget(labels, 4, 1.0, s);
        CollectionAssert.AreEqual(new[] { 0.025f, 0.025f, 0.925f, 0.025f, 0.925f, 0.025f, 0.025f, 0.025f },
            target.data<float>().ToArray().Select(v => (float)Math.Round(v, 6)).ToArray());
        using var soft = MaeClassificationLoss.SoftTargetCrossEntropy(logits, target);
        Assert.AreEqual(expected, soft.item<float>(), 1e-6);
        using var plain = MaeClassificationLoss.LabelSmoothingCrossEntropy(logits, labels, 0);
        using var reference = nn.functional.cross_entropy(logits, labels);
        Assert.AreEqual(reference.item<float>(), plain.item<float>(), 1e-6);
    }

    [TestMethod]
    public void MixupBlendsWithTheReversedBatchAndCutmixCorrectsLambda()
    {
        torch.manual_seed(11);
        using var x = rand(4, 1, 8, 8);
        using var y = tensor(new long[] { 0, 1, 2, 0 });
        var mix = new MaeMixup(new MaeFineTuneOptions { Mixup = 0.8, BatchSize = 4, LabelSmoothing = 0 }, 3);
        var (mixed, targets, lam) = mix.Apply(x, y);
        Assert.IsTrue(lam > 0 && lam < 1);
        using (var expected = x * lam + x.flip(0) * (1 - lam)) Assert.IsTrue(mixed.allclose(expected, 1e-6, 1e-6));
        using (var rowSums = targets.sum(1)) Assert.IsTrue(rowSums.allclose(ones(4)));
        Assert.AreEqual(1.0, targets[0, 0].item<float>(), 1e-6);         // y[0] = 0 and its partner y[3] = 0 too
        Assert.AreEqual(lam, targets[1, 1].item<float>(), 1e-6);
        Assert.AreEqual(1 - lam, targets[1, 2].item<float>(), 1e-6);     // partner of row 1 is row 2
        mixed.Dispose(); targets.Dispose();

        var cut = new MaeMixup(new MaeFineTuneOptions { Cutmix = 1.0, BatchSize = 4, LabelSmoothing = 0 }, 3);
        var (c, t2, lam2) = cut.Apply(x, y);
        // Pixels either come from the image or from its partner; lam = the kept fraction of the area.
        using var same = c.eq(x).@float().mean(new long[] { 1, 2, 3 });
        using var fromPartner = c.eq(x.flip(0)).@float().mean(new long[] { 1, 2, 3 });
        Assert.AreEqual(lam2, same[1].item<float>(), 1e-6);
        Assert.AreEqual(1 - lam2, fromPartner[1].item<float>(), 1e-6);
        c.Dispose(); t2.Dispose();
    }

    [TestMethod]
    public void TrainingIsDeterministicOnCpuWithASeedAndLearns()
    {
        (float[] Losses, float[] Weights, double Accuracy) Run()
        {
            using var train = TinyFt.Source(48);
            using var val = TinyFt.Source(24, seed: 99);
            using var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 3);
            var o = TinyFt.Options(4);
            var r = new MaeFineTuner(o).Train(model, train, val);
            return (r.StepLosses.ToArray(), model.head.weight.detach().flatten().data<float>().ToArray(), r.BestValidationAccuracy!.Value);
        }
        var a = Run();
        var b = Run();
        CollectionAssert.AreEqual(a.Losses, b.Losses);
        CollectionAssert.AreEqual(a.Weights, b.Weights);
        Assert.AreEqual(24, a.Losses.Length);
        Assert.IsTrue(a.Accuracy > 0.6, $"the synthetic task is learnable (chance 1/3): best validation accuracy {a.Accuracy:P0}");
    }

    [TestMethod]
    public void ResumeFromCheckpointContinuesExactlyAndKeepsTheBestEpoch()
    {
        using var dir = new TempDir();
        using var train = TinyFt.Source(32);
        using var val = TinyFt.Source(12, seed: 99);
        var seen = new List<MaeFineTuneProgress>();

        using var straight = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 3);
        var full = new MaeFineTuner(TinyFt.Options(3)).Train(straight, train, val, new SyncFtProgress(seen.Add));

        var o1 = TinyFt.Options(3);
        o1.CheckpointDir = dir.Path;
        using (var first = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 3))
        {
            o1.Epochs = 3;
            // Stop after the first epoch by cancelling from the end-of-epoch report.
            using var cts = new CancellationTokenSource();
            var progress = new SyncFtProgress(p => { if (p.EndOfEpoch && p.Epoch == 0) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => new MaeFineTuner(o1).Train(first, train, val, progress, cts.Token));
        }
        Assert.IsNotNull(MaeFineTuneCheckpoint.FindLatest(dir.Path));
        Assert.AreEqual(1, MaeFineTuneCheckpoint.ReadHeader(MaeFineTuneCheckpoint.FindLatest(dir.Path)!).EpochsCompleted);

        var o2 = TinyFt.Options(3);
        o2.CheckpointDir = dir.Path;
        o2.Resume = true;
        using var resumed = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 42); // other init: the checkpoint replaces it
        var r = new MaeFineTuner(o2).Train(resumed, train, val);
        StringAssert.EndsWith(r.ResumedFrom, "finetune-0001.maeft");
        CollectionAssert.AreEqual(full.StepLosses.ToArray(), r.StepLosses.ToArray());
        CollectionAssert.AreEqual(full.ValidationAccuracies.ToArray(), r.ValidationAccuracies.ToArray());
        Assert.AreEqual(full.BestEpoch, r.BestEpoch);
        Assert.IsTrue(r.RestoredBestWeights);
        foreach (var ((name, p), (_, q)) in straight.named_parameters().Zip(resumed.named_parameters()))
            Assert.IsTrue(p.eq(q).all().item<bool>(), name);
        // The best epoch's accuracy is what the model now scores on the validation set.
        var (acc, _) = MaeFineTuner.Evaluate(resumed, val, MaeFineTuner.EvaluationTransform(TinyFt.Options(1).ResolveAugmentation(TinyFt.Config)));
        Assert.AreEqual(r.BestValidationAccuracy!.Value, acc, 1e-12);
        Assert.AreEqual(full.ValidationAccuracies.Max(), r.BestValidationAccuracy!.Value);
        Assert.AreEqual(3, seen.Count(p => p.EndOfEpoch && p.ValidationAccuracy is not null));
    }

    [TestMethod]
    public void BadInputIsRejectedBeforeTraining()
    {
        using var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 1);
        var o = TinyFt.Options(1);
        var tuner = new MaeFineTuner(o);
        var e1 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeFineTuner.FromScratch(TinyFt.Config, 1));
        StringAssert.Contains(e1.Message, "at least 2 classes");
        using (var wrongSize = MaeLabeledImageSource.FromArrays(new[] { new float[1 * 20 * 20] }, new long[] { 0 }, new Mae.MLNet.Input.MaeImageShape(1, 20, 20)))
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => tuner.Train(model, wrongSize));
            StringAssert.Contains(e.Message, "1×16×16");
            StringAssert.Contains(e.Message, "1×20×20");
        }
        using (var wrongChannels = MaeLabeledImageSource.FromArrays(new[] { new float[3 * 16 * 16] }, new long[] { 0 }, new Mae.MLNet.Input.MaeImageShape(3, 16, 16)))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => tuner.Train(model, wrongChannels)).Message, "3×16×16");
        var (images, _) = TinyFt.Data(8);
        using (var badLabels = MaeLabeledImageSource.FromArrays(images, Enumerable.Repeat(5L, 8), TinyFt.Shape))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => tuner.Train(model, badLabels)).Message, "labels up to 5");
        using (var few = TinyFt.Source(4))
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => tuner.Train(model, few)).Message, "fewer than BatchSize");
        Assert.ThrowsExactly<ArgumentException>(() => MaeLabeledImageSource.FromArrays(images, new long[] { 0 }, TinyFt.Shape));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeFineTuner(new MaeFineTuneOptions { Mixup = 0.8, BatchSize = 7 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeFineTuner(new MaeFineTuneOptions { LayerDecay = 0 }));
    }
}
