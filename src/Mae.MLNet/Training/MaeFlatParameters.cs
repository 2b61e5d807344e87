using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>One optimizer parameter group: its parameters, lr scale (layer decay) and weight decay.</summary>
internal sealed record MaeParamGroup(string Name, double LrScale, double WeightDecay, IReadOnlyList<(string Name, Parameter Parameter)> Parameters);

/// <summary>
/// The trainable parameters stored in one flat fp32 buffer, <see cref="Data"/> (groups laid out one after another, so a
/// group is a contiguous range), with the gradients in a second one, <see cref="Grad"/>: each parameter is re-pointed
/// (<c>set_</c>) to its slice of <see cref="Data"/> and its <c>.grad</c> is preset to its slice of <see cref="Grad"/>, so
/// autograd accumulates in place and the optimizer and zeroing are whole-buffer operations.
/// With a reduced-precision compute dtype, a shadow copy of <see cref="Data"/> in that dtype is cast once per step
/// (<see cref="CastForStep"/>) and its slices stand in for the fp32 parameters in every layer call
/// (<see cref="MixedPrecision.UseCastWeights"/>); their gradients land in a shadow gradient buffer that
/// <see cref="CollectShadowGrads()"/> adds to <see cref="Grad"/> in fp32 — the same fp32 gradient as casting per call,
/// where autograd's cast backward converts each layer's reduced-precision gradient.
/// </summary>
internal sealed class MaeFlatParameters : IDisposable
{
    public IReadOnlyList<MaeParamGroup> Groups { get; }
    /// <summary>All trainable parameters, fp32, [P].</summary>
    public Tensor Data { get; }
    /// <summary>Their gradients, fp32, [P].</summary>
    public Tensor Grad { get; }
    /// <summary>Elements per group, in layout order.</summary>
    public long[] GroupSizes { get; }
    public long Count { get; }
    public ScalarType? ComputeDType { get; }

    readonly List<Tensor> views = new();
    readonly Tensor? shadow, shadowGrad;
    readonly Dictionary<IntPtr, Tensor> castWeights = new();
    readonly Dictionary<IntPtr, (long Offset, long Count)> ranges = new();

    public MaeFlatParameters(IReadOnlyList<MaeParamGroup> groups, ScalarType? computeDType = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var all = groups.SelectMany(g => g.Parameters).ToList();
        if (all.Count == 0) throw new ArgumentException("There are no trainable parameters.", nameof(groups));
        if (all.Select(p => p.Parameter.Handle).Distinct().Count() != all.Count)
            throw new ArgumentException("A parameter appears in more than one group.", nameof(groups));
        var device = all[0].Parameter.device;
        foreach (var (name, p) in all)
        {
            if (p.dtype != ScalarType.Float32)
                throw new ArgumentException($"Parameter '{name}' is {p.dtype}; the flat buffer holds fp32 master weights.", nameof(groups));
            if (p.device_type != device.type || p.device_index != device.index)
                throw new ArgumentException($"Parameter '{name}' is on {p.device}, the others on {device}; move the model to one device first.", nameof(groups));
            if (!p.requires_grad) throw new ArgumentException($"Parameter '{name}' is frozen (requires_grad = false); leave it out of the groups.", nameof(groups));
        }
        Groups = groups;
        ComputeDType = MixedPrecision.Validate(computeDType);
        GroupSizes = groups.Select(g => g.Parameters.Sum(p => p.Parameter.numel())).ToArray();
        Count = GroupSizes.Sum();

        Data = zeros(Count, dtype: ScalarType.Float32, device: device);
        Grad = zeros(Count, dtype: ScalarType.Float32, device: device);
        if (ComputeDType is { } dtype)
        {
            shadow = zeros(Count, dtype: dtype, device: device);
            shadowGrad = zeros(Count, dtype: dtype, device: device);
        }
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // what the views keep is detached from it
        long offset = 0;
        foreach (var (_, p) in all)
        {
            long n = p.numel();
            var shape = p.shape;
            var slice = Keep(Data.narrow(0, offset, n).view(shape));
            slice.copy_(p);
            p.set_(slice);                                         // the parameter now lives in Data
            ranges[p.Handle] = (offset, n);
            p.grad = Keep(Grad.narrow(0, offset, n).view(shape)); // autograd accumulates into Grad in place
            if (shadow is not null)
            {
                var cast = Keep(shadow.narrow(0, offset, n).view(shape));
                cast.requires_grad_(true);
                cast.grad = Keep(shadowGrad!.narrow(0, offset, n).view(shape));
                castWeights[p.Handle] = cast;
            }
            offset += n;
        }
    }

    Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        views.Add(t);
        return t;
    }

    /// <summary>Sets every gradient to zero (one kernel; two with a shadow).</summary>
    public void ZeroGrad()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // in-place ops hand back a new wrapper
        Grad.zero_();
        shadowGrad?.zero_();
    }

    /// <summary>Casts the weights once for this step and makes the layers use the copies until disposed; a no-op
    /// scope in plain fp32.</summary>
    public IDisposable CastForStep()
    {
        if (shadow is null) return NoScope.Instance;
        using (no_grad())
        using (NewDisposeScope()) shadow.copy_(Data);
        return MixedPrecision.UseCastWeights(castWeights);
    }

    /// <summary>The ranges of <see cref="Grad"/> that hold the gradients of <paramref name="parameters"/> (those in the
    /// buffer), sorted, adjacent ones merged.</summary>
    public List<(long Offset, long Count)> RangesOf(IEnumerable<Parameter> parameters)
    {
        var sorted = parameters.Select(p => ranges.TryGetValue(p.Handle, out var r) ? r : (-1, 0)).Where(r => r.Item1 >= 0)
            .Distinct().OrderBy(r => r.Item1).ToList();
        var merged = new List<(long Offset, long Count)>();
        foreach (var (o, n) in sorted)
            if (merged.Count > 0 && merged[^1].Offset + merged[^1].Count == o) merged[^1] = (merged[^1].Offset, merged[^1].Count + n);
            else merged.Add((o, n));
        return merged;
    }

    /// <summary><see cref="CollectShadowGrads()"/> for the given ranges only (the same element-wise sums).</summary>
    public void CollectShadowGrads(IEnumerable<(long Offset, long Count)> of)
    {
        if (shadowGrad is null) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (o, n) in of)
        {
            var shadowPart = shadowGrad.narrow(0, o, n);
            Grad.narrow(0, o, n).PlusInPlace(shadowPart);
            shadowPart.zero_();
        }
    }

    /// <summary>After a backward: adds the reduced-precision gradients to the fp32 ones and clears them.</summary>
    public void CollectShadowGrads()
    {
        if (shadowGrad is null) return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Grad.PlusInPlace(shadowGrad);
        shadowGrad.zero_();
    }

    /// <summary>A fixed description of the layout (group names, parameter names and shapes) that a checkpoint's
    /// optimizer state must match.</summary>
    public string Layout => string.Join(";", Groups.Select(g =>
        g.Name + ":" + string.Join(",", g.Parameters.Select(p => p.Name + "[" + string.Join("x", p.Parameter.shape) + "]"))));

    public void Dispose()
    {
        foreach (var v in views) v.Dispose();
        views.Clear();
        castWeights.Clear();
        shadow?.Dispose();
        shadowGrad?.Dispose();
        Data.Dispose();
        Grad.Dispose();
    }

    sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }
}
