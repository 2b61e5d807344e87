using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.FineTuning;
using Mae.MLNet.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training;

[TestClass]
public class FlatAdamWTest
{
    static readonly MaeConfig Mae = TinyFt.Config with { InChannels = 3 };

    /// <summary>Two identical models; one trained by TorchSharp's optim.AdamW with the groups, the other through
    /// the flat buffer; 100 steps of the same gradients (d/dp of Σ p·g with g a seeded function of the step and of p,
    /// so a drift would feed back), lr following warm-up + cosine. Every parameter must agree to 1e-6 relative.</summary>
    static void AssertSameAsTorchAdamW(Func<nn.Module> create, Func<nn.Module, IReadOnlyList<MaeParamGroup>> groupsOf, double? clip = null)
    {
        using var reference = create();
        using var flatModel = create();
        var refGroups = groupsOf(reference);
        var flatGroups = groupsOf(flatModel);
        using var torchAdamW = optim.AdamW(refGroups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter),
            lr: 1e-3 * g.LrScale, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: g.WeightDecay)).ToList(), lr: 1e-3);
        using var flat = new MaeFlatParameters(flatGroups);
        using var adamW = new MaeFlatAdamW(flat, 0.9, 0.95, 1e-8);
        var refParams = refGroups.SelectMany(g => g.Parameters).ToList();
        var flatParams = flatGroups.SelectMany(g => g.Parameters).ToList();
        Assert.IsTrue(refParams.Select(p => p.Name).SequenceEqual(flatParams.Select(p => p.Name)));

        for (int step = 0; step < 100; step++)
        {
            double lr = MaeLrSchedule.At(step / 10.0, 1e-3, 1e-6, 1, 10);
            using var scope = NewDisposeScope();
            foreach (var (model, parameters) in new[] { (reference, refParams), (flatModel, flatParams) })
            {
                Tensor loss = zeros(1);
                for (int i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i].Parameter;
                    var g = randn(p.shape, generator: new Generator((ulong)(1000 * step + i))) + p.detach().sin();
                    loss = loss + (p * g).sum();
                }
                loss.backward();
            }
            int k = 0;
            foreach (var group in torchAdamW.ParamGroups) group.LearningRate = lr * refGroups[k++].LrScale;
            if (clip is double c)
            {
                nn.utils.clip_grad_norm_(refParams.Select(p => p.Parameter), c);
                adamW.ClipGradNorm(c);
            }
            torchAdamW.step();
            torchAdamW.zero_grad();
            adamW.Step(lr);
            flat.ZeroGrad();
        }

        double worst = 0;
        string worstName = "";
        for (int i = 0; i < refParams.Count; i++)
        {
            using var a = refParams[i].Parameter.detach().to(float64);
            using var b = flatParams[i].Parameter.detach().to(float64);
            double rel = ((a - b).abs().max().item<double>()) / Math.Max(a.abs().max().item<double>(), 1e-12);
            if (rel > worst) (worst, worstName) = (rel, refParams[i].Name);
        }
        Assert.IsTrue(worst <= 1e-6, $"largest relative difference {worst:E2} at {worstName}");
        Assert.AreEqual(100, adamW.StepCount);
    }

    [TestMethod]
    public void PretrainingGroupsMatchTorchAdamWOver100Steps()
    {
        AssertSameAsTorchAdamW(() => { TorchRuntime.Seed(3); return new MaskedAutoencoder(Mae); }, m =>
        {
            var split = MaeWeightDecay.Split(m, new[] { "pos_embed", "cls_token", "mask_token", "decoder_pos_embed" });
            return new[] { new MaeParamGroup("decay", 1, 0.05, split.Decay), new MaeParamGroup("no_decay", 1, 0, split.NoDecay) };
        });
    }

    [TestMethod]
    public void LayerDecayGroupsMatchTorchAdamWOver100Steps()
    {
        AssertSameAsTorchAdamW(() =>
        {
            TorchRuntime.Seed(4);
            var m = new VitClassifier(TinyFt.Config, 3);
            m.Encoder.pos_embed.requires_grad = true;
            return m;
        }, m => MaeLayerDecay.ParamGroups((VitClassifier)m, 0.05, 0.75)
            .Select(g => new MaeParamGroup(g.Name, g.LrScale, g.WeightDecay, g.Parameters)).ToList());
    }

    [TestMethod]
    public void GradientClippingMatchesClipGradNorm()
    {
        AssertSameAsTorchAdamW(() => { TorchRuntime.Seed(5); return new VitClassifier(TinyFt.Config, 3); },
            m => MaeLayerDecay.ParamGroups((VitClassifier)m, 0.05, 0.75)
                .Select(g => new MaeParamGroup(g.Name, g.LrScale, g.WeightDecay, g.Parameters)).ToList(), clip: 1.0);
    }

    [TestMethod]
    public void Bf16WeightsCastOncePerStepGiveTheSameLossAndGradientsAsCastingPerLayerCall()
    {
        // The same bf16 forward + backward twice: casting each weight at its layer call (autograd's cast backward turns
        // the bf16 weight gradient into fp32), and the flat buffer's one cast per step with the gradient collected
        // from the bf16 shadow. Each weight is used once per forward, so the two must agree exactly.
        TorchRuntime.Seed(6);
        using var perCall = new MaskedAutoencoder(Mae) { ComputeDType = ScalarType.BFloat16 };
        TorchRuntime.Seed(6);
        using var castOnce = new MaskedAutoencoder(Mae) { ComputeDType = ScalarType.BFloat16 };
        var split = MaeWeightDecay.Split(castOnce, Array.Empty<string>());
        using var flat = new MaeFlatParameters(new[] { new MaeParamGroup("decay", 1, 0.05, split.Decay), new MaeParamGroup("no_decay", 1, 0, split.NoDecay) },
            ScalarType.BFloat16);
        using var images = rand(4, 3, 16, 16, generator: new Generator(11));
        using var noise = rand(4, Mae.NumPatches, generator: new Generator(12));
        for (int round = 0; round < 2; round++) // the second round checks that zeroing and re-casting work
        {
            using var scope = NewDisposeScope();
            foreach (var p in perCall.parameters()) p.grad = null;
            var (expected, _, _) = perCall.Forward(images, 0.75, noise);
            expected.backward();
            flat.ZeroGrad();
            Tensor actual;
            using (flat.CastForStep()) (actual, _, _) = castOnce.Forward(images, 0.75, noise);
            actual.backward();
            flat.CollectShadowGrads();
            Assert.AreEqual(expected.item<float>(), actual.item<float>(), $"loss, round {round}");
            var a = perCall.named_parameters().Where(p => p.parameter.requires_grad).ToList();
            var b = castOnce.named_parameters().Where(p => p.parameter.requires_grad).ToList();
            for (int i = 0; i < a.Count; i++)
            {
                Assert.AreEqual(a[i].name, b[i].name);
                float diff = (a[i].parameter.grad! - b[i].parameter.grad!).abs().max().item<float>();
                Assert.AreEqual(0f, diff, $"gradient of {a[i].name}, round {round}");
            }
            // The fp32 parameters are views of the flat buffer; a step there moves them.
            using (no_grad()) flat.Data.add_(0.01);
            using (no_grad()) foreach (var p in perCall.parameters().Where(p => p.requires_grad)) p.add_(0.01);
        }
    }
}
