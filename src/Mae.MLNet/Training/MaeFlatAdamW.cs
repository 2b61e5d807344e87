using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// AdamW with decoupled weight decay (Loshchilov &amp; Hutter; PyTorch's <c>torch.optim.AdamW</c>, foreach off) over a
/// <see cref="MaeFlatParameters"/> buffer: the same arithmetic, in the same order, as TorchSharp's <c>optim.AdamW</c>
/// loop over the parameter groups — <c>p ← p·(1 − lr_g·wd_g)</c>; <c>m ← β₁m + (1 − β₁)g</c>;
/// <c>v ← β₂v + (1 − β₂)g²</c>; <c>p ← p + (−lr_g / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε)</c> — but the moments
/// and the denominator as whole-buffer operations and the two per-group updates on each group's contiguous range
/// (5 + 2 × groups kernels instead of about 10 per parameter). The per-group coefficients are the same doubles the
/// loop computes, so every element sees the scalar the loop would have used.
/// </summary>
internal sealed class MaeFlatAdamW : IDisposable
{
    readonly MaeFlatParameters flat;
    readonly double beta1, beta2, eps;
    readonly double[] lrScales, weightDecays;
    /// <summary>Each group's contiguous range in the flat buffer.</summary>
    readonly (long Offset, long Count)[] groups;
    /// <summary>First and second moments, fp32, [P].</summary>
    public Tensor ExpAvg { get; }
    public Tensor ExpAvgSq { get; }
    /// <summary>Optimizer steps taken (the bias corrections' t).</summary>
    public long StepCount { get; private set; }

    public MaeFlatAdamW(MaeFlatParameters flat, double beta1, double beta2, double eps)
    {
        ArgumentNullException.ThrowIfNull(flat);
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "β₁ must be in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "β₂ must be in [0, 1).");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "ε must be ≥ 0.");
        this.flat = flat;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        lrScales = flat.Groups.Select(g => g.LrScale).ToArray();
        weightDecays = flat.Groups.Select(g => g.WeightDecay).ToArray();
        groups = new (long, long)[flat.GroupSizes.Length];
        long start = 0;
        for (int i = 0; i < groups.Length; start += flat.GroupSizes[i], i++) groups[i] = (start, flat.GroupSizes[i]);
        ExpAvg = zeros_like(flat.Data);
        ExpAvg.DetachFromDisposeScope();
        ExpAvgSq = zeros_like(flat.Data);
        ExpAvgSq.DetachFromDisposeScope();
    }

    /// <summary>One AdamW step at base learning rate <paramref name="lr"/> (group g uses lr × its scale). Every Scalar is
    /// held for its native call (see <see cref="ScalarMath"/>).</summary>
    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        StepCount++;
        double biasCorrection1 = 1 - Math.Pow(beta1, StepCount);
        double biasCorrection2 = 1 - Math.Pow(beta2, StepCount);
        var grad = flat.Grad;
        var p = flat.Data;
        // Decoupled decay per group (a group without decay would multiply by exactly 1: skipped).
        for (int i = 0; i < groups.Length; i++)
            if (weightDecays[i] != 0) p.narrow(0, groups[i].Offset, groups[i].Count).TimesInPlace(1 - lr * lrScales[i] * weightDecays[i]);
        using (var b1 = beta1.ToScalar())
        using (var oneMinusB1 = (1 - beta1).ToScalar())
            ExpAvg.mul_(b1).add_(grad, oneMinusB1);
        using (var b2 = beta2.ToScalar())
        using (var oneMinusB2 = (1 - beta2).ToScalar())
            ExpAvgSq.mul_(b2).addcmul_(grad, grad, oneMinusB2);
        var denom = ExpAvgSq.sqrt().DividedBy(Math.Sqrt(biasCorrection2)).PlusInPlace(eps);
        for (int i = 0; i < groups.Length; i++)
        {
            var (offset, count) = groups[i];
            using var stepSize = (-(lr * lrScales[i] / biasCorrection1)).ToScalar();
            p.narrow(0, offset, count).addcdiv_(ExpAvg.narrow(0, offset, count), denom.narrow(0, offset, count), stepSize);
        }
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/> (as
    /// <c>clip_grad_norm_</c>: coefficient max / (norm + 1e-6), clamped to 1), on the device, without reading the norm.</summary>
    public void ClipGradNorm(double maxNorm)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var norm = flat.Grad.norm();
        using var max = maxNorm.ToScalar();
        var coefficient = norm.PlusInPlace(1e-6).reciprocal_().mul_(max).clamp_max_(ScalarMath.One);
        flat.Grad.mul_(coefficient);
    }

    public void Save(BinaryWriter w)
    {
        w.Write(flat.Layout);
        w.Write(StepCount);
        ExpAvg.Save(w);
        ExpAvgSq.Save(w);
    }

    public void Load(BinaryReader r, string path)
    {
        var layout = r.ReadString();
        if (layout != flat.Layout)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}': the optimizer state was written for other parameter groups ({Shorten(layout)}); this run has ({Shorten(flat.Layout)}).", path);
        long steps = r.ReadInt64();
        if (steps < 0) throw CheckpointFile.Invalid(path, $"its optimizer step count is {steps}");
        using var noGrad = no_grad();
        ExpAvg.Load(r);
        ExpAvgSq.Load(r);
        StepCount = steps;
    }

    /// <summary>Takes over the state of a TorchSharp <c>optim.AdamW</c> built over the same groups in the same order
    /// (how format-1 checkpoints stored it).</summary>
    public void LoadFrom(TorchSharp.Modules.AdamW legacy, string path)
    {
        var states = legacy.state_dict().State;
        var parameters = flat.Groups.SelectMany(g => g.Parameters).ToList();
        if (states.Count != parameters.Count)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}': its optimizer holds {states.Count} parameters; this run trains {parameters.Count}.", path);
        using var noGrad = no_grad();
        long offset = 0, steps = -1;
        for (int i = 0; i < parameters.Count; i++)
        {
            var s = (TorchSharp.Modules.AdamW.State)states[i];
            long n = parameters[i].Parameter.numel();
            if (s.exp_avg.numel() != n)
                throw new MaeTrainingCheckpointException($"Checkpoint '{path}': optimizer state {i} has {s.exp_avg.numel()} elements; '{parameters[i].Name}' has {n}.", path);
            if (steps >= 0 && s.step != steps)
                throw new MaeTrainingCheckpointException($"Checkpoint '{path}': its parameters took different numbers of optimizer steps ({steps}, {s.step}).", path);
            steps = s.step;
            ExpAvg.narrow(0, offset, n).copy_(s.exp_avg.reshape(-1));
            ExpAvgSq.narrow(0, offset, n).copy_(s.exp_avg_sq.reshape(-1));
            offset += n;
        }
        StepCount = Math.Max(0, steps);
    }

    static string Shorten(string s) => s.Length <= 200 ? s : s[..200] + " …";

    public void Dispose()
    {
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
