using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// timm's <c>Mixup</c> in its default "batch" mode: with probability <see cref="MaeFineTuneOptions.MixupProbability"/>
/// draws lam ~ Beta(α, α) (cutmix instead of mixup with probability <see cref="MaeFineTuneOptions.MixupSwitchProbability"/>
/// when both are on); mixup blends each image with the batch reversed, cutmix pastes a box of side ratio √(1 − lam)
/// from it at a uniform centre (clipped) and corrects lam to the pasted area. Targets are the smoothed one-hot mix.
/// All draws come from libtorch's global CPU generator, so checkpoints cover them.
/// </summary>
internal sealed class MaeMixup
{
    readonly double mixupAlpha, cutmixAlpha, prob, switchProb, smoothing;
    readonly int numClasses;

    public MaeMixup(MaeFineTuneOptions options, int numClasses)
    {
        mixupAlpha = options.Mixup; cutmixAlpha = options.Cutmix; prob = options.MixupProbability;
        switchProb = options.MixupSwitchProbability; smoothing = options.LabelSmoothing; this.numClasses = numClasses;
    }

    static double Uniform()
    {
        using var u = rand(1, dtype: float64);
        return u.item<double>();
    }

    static double SampleBeta(double alpha)
    {
        using var a = tensor(alpha, float64);
        using var b = tensor(alpha, float64);
        using var dist = distributions.Beta(a, b);
        using var s = dist.sample();
        return s.item<double>();
    }

    /// <summary>Mixes <paramref name="images"/> [B, C, H, W] (not in place) and returns the soft targets [B, K].</summary>
    public (Tensor Images, Tensor Targets, double Lambda) Apply(Tensor images, Tensor labels)
    {
        double lam = 1.0;
        bool cut = false;
        if (Uniform() < prob)
        {
            if (mixupAlpha > 0 && cutmixAlpha > 0)
            {
                cut = Uniform() < switchProb;
                lam = SampleBeta(cut ? cutmixAlpha : mixupAlpha);
            }
            else if (mixupAlpha > 0) lam = SampleBeta(mixupAlpha);
            else { cut = true; lam = SampleBeta(cutmixAlpha); }
        }
        using var scope = NewDisposeScope();
        Tensor x;
        if (lam == 1.0) x = images.alias();
        else if (cut)
        {
            long h = images.shape[2], w = images.shape[3];
            double ratio = Math.Sqrt(1 - lam);
            long cutH = (long)(h * ratio), cutW = (long)(w * ratio);
            long cy, cx;
            using (var c = randint(0, h, new long[] { 1 })) cy = c.item<long>();
            using (var c = randint(0, w, new long[] { 1 })) cx = c.item<long>();
            long yl = Math.Clamp(cy - cutH / 2, 0, h), yh = Math.Clamp(cy + cutH / 2, 0, h);
            long xl = Math.Clamp(cx - cutW / 2, 0, w), xh = Math.Clamp(cx + cutW / 2, 0, w);
            x = images.clone();
            if (yh > yl && xh > xl)
            {
                var region = (TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(yl, yh), TensorIndex.Slice(xl, xh));
                x[region.Item1, region.Item2, region.Item3, region.Item4] = images.flip(0)[region.Item1, region.Item2, region.Item3, region.Item4];
            }
            lam = 1.0 - (double)((yh - yl) * (xh - xl)) / (h * w);
        }
        else x = images.Times(lam).Plus(images.flip(0).Times(1 - lam));
        var targets = MaeClassificationLoss.MixupTarget(labels, numClasses, lam, smoothing);
        return (x.MoveToOuterDisposeScope(), targets.MoveToOuterDisposeScope(), lam);
    }
}
