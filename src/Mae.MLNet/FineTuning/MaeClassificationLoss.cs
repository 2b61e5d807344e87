using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>The reference's criteria (timm): label-smoothing cross entropy, soft-target cross entropy (with mixup),
/// and the one-hot targets timm's <c>mixup_target</c> builds.</summary>
internal static class MaeClassificationLoss
{
    /// <summary>
    /// timm's <c>LabelSmoothingCrossEntropy</c>: mean over the batch of
    /// <c>(1 − s)·(−log p[target]) + s·mean_k(−log p[k])</c>; with s = 0 it is the plain cross entropy.
    /// </summary>
    public static Tensor LabelSmoothingCrossEntropy(Tensor logits, Tensor targets, double smoothing)
    {
        if (!(smoothing >= 0 && smoothing < 1)) throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, "smoothing must be in [0, 1).");
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(logits.to(float32), -1);
        var nll = -logp.gather(-1, targets.to(int64).unsqueeze(-1)).squeeze(-1);
        var loss = smoothing == 0 ? nll : nll.Times(1 - smoothing).Plus(logp.mean(new long[] { -1 }).Times(-smoothing));
        return loss.mean().MoveToOuterDisposeScope();
    }

    /// <summary>timm's <c>SoftTargetCrossEntropy</c>: mean over the batch of <c>Σ_k −target[k]·log p[k]</c>.</summary>
    public static Tensor SoftTargetCrossEntropy(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(logits.to(float32), -1);
        return (-targets * logp).sum(-1).mean().MoveToOuterDisposeScope();
    }

    /// <summary>timm's <c>mixup_target</c>: <c>lam·onehot(y) + (1 − lam)·onehot(flip(y))</c> with smoothed one-hots
    /// (off = s/K, on = 1 − s + s/K).</summary>
    public static Tensor MixupTarget(Tensor targets, int numClasses, double lam, double smoothing)
    {
        using var scope = NewDisposeScope();
        double off = smoothing / numClasses, on = 1 - smoothing + off;
        Tensor OneHot(Tensor y) => nn.functional.one_hot(y.to(int64), numClasses).to(float32).Times(on - off).Plus(off);
        var y1 = OneHot(targets);
        var y2 = OneHot(targets.flip(0));
        return y1.Times(lam).Plus(y2.Times(1 - lam)).MoveToOuterDisposeScope();
    }
}
