using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Training;

[TestClass]
public class LrScheduleTest
{
    const double Lr = 2e-3, Min = 1e-5, Warm = 4, Epochs = 20;

    [TestMethod]
    public void WarmupIsLinearFromZero()
    {
        Assert.AreEqual(0.0, MaeLrSchedule.At(0, Lr, Min, Warm, Epochs));
        Assert.AreEqual(Lr / 4, MaeLrSchedule.At(1, Lr, Min, Warm, Epochs), 1e-18);
        Assert.AreEqual(Lr * 2.5 / 4, MaeLrSchedule.At(2.5, Lr, Min, Warm, Epochs), 1e-18);
    }

    [TestMethod]
    public void CosineStartsAtPeakPassesMidpointAndEndsAtMin()
    {
        Assert.AreEqual(Lr, MaeLrSchedule.At(Warm, Lr, Min, Warm, Epochs), 1e-18);
        // Half-way through the cosine phase: cos(π/2) = 0 → (lr + min) / 2.
        Assert.AreEqual((Lr + Min) / 2, MaeLrSchedule.At(Warm + (Epochs - Warm) / 2, Lr, Min, Warm, Epochs), 1e-15);
        // A quarter of the way: min + (lr − min)·(1 + √2/2)/2.
        Assert.AreEqual(Min + (Lr - Min) * (1 + Math.Sqrt(0.5)) / 2, MaeLrSchedule.At(Warm + (Epochs - Warm) / 4, Lr, Min, Warm, Epochs), 1e-15);
        Assert.AreEqual(Min, MaeLrSchedule.At(Epochs, Lr, Min, Warm, Epochs), 1e-15);
    }

    [TestMethod]
    public void NoWarmupStartsAtPeak()
        => Assert.AreEqual(Lr, MaeLrSchedule.At(0, Lr, 0, 0, Epochs));

    [TestMethod]
    public void FractionalEpochIsStepOverStepsPerEpoch()
    {
        var o = new MaePretrainOptions { LearningRate = 1e-3, MinLearningRate = 0, WarmupEpochs = 2, Epochs = 10 };
        // Epoch 1, step 25 of 100 → e = 1.25 → warmup lr·1.25/2.
        Assert.AreEqual(1e-3 * 1.25 / 2, MaeLrSchedule.At(1 + 25 / 100.0, o.PeakLearningRate, o.MinLearningRate, o.WarmupEpochs, o.Epochs), 1e-18);
        // Epoch 6, step 0 → e = 6 → cos(π·4/8) = 0 → lr/2.
        Assert.AreEqual(0.5e-3, MaeLrSchedule.At(6 + 0 / 100.0, o.PeakLearningRate, o.MinLearningRate, o.WarmupEpochs, o.Epochs), 1e-15);
    }

    [TestMethod]
    public void PeakLrScalesWithTheEffectiveBatchUnlessAbsolute()
    {
        var o = new MaePretrainOptions { BatchSize = 32, AccumIter = 4 };
        Assert.AreEqual(1.5e-4, o.BaseLearningRate);
        Assert.AreEqual(128, o.EffectiveBatchSize);
        Assert.AreEqual(1.5e-4 * 128 / 256, o.PeakLearningRate, 1e-20);
        // The paper's recipe: 4096 effective batch → 2.4e-3.
        Assert.AreEqual(2.4e-3, new MaePretrainOptions { BatchSize = 64, AccumIter = 64 }.PeakLearningRate, 1e-15);
        o.LearningRate = 5e-4;
        Assert.AreEqual(5e-4, o.PeakLearningRate);
    }

    [TestMethod]
    public void DefaultsAreTheReferenceRecipe()
    {
        var o = new MaePretrainOptions();
        Assert.AreEqual(0.75, o.MaskRatio);
        Assert.AreEqual(0.9, o.Beta1);
        Assert.AreEqual(0.95, o.Beta2);
        Assert.AreEqual(0.05, o.WeightDecay);
        Assert.AreEqual(0.0, o.MinLearningRate);
        Assert.AreEqual(1, o.AccumIter);
        // norm_pix_loss is the model's setting; every preset has the paper's normalised-pixel target.
        Assert.IsTrue(MaeConfig.VitBase16.NormPixLoss && MaeConfig.VitLarge16.NormPixLoss && MaeConfig.VitHuge14.NormPixLoss);
        Assert.IsNull(o.LearningRate);
    }
}
