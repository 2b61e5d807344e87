using System.Runtime;

namespace Mae.MLNet.Runtime;

/// <summary>
/// Keeps the .NET garbage collector from running while a training or inference step is inside libtorch.
/// TorchSharp 0.107 passes raw handles of temporary <c>Scalar</c> objects to native calls (e.g. the implicit alpha = 1
/// of every <c>tensor + tensor</c>, AdamW's coefficients); if another thread allocates and a GC runs while such a call
/// is in progress, the temporary is already unreachable and its finalizer can free the native Scalar mid-call. Seen
/// here as intermittent libtorch errors ("Expected false to be true" from Scalar::toFloat under THSTensor_add,
/// "Unknown scalar type") with a progress-bar or ML.NET thread allocating beside a training loop. Objects created
/// during the step cannot be collected before it ends, so their native calls complete first.
/// If the budget is exceeded the runtime simply collects as usual (the scope then ends quietly).
/// <para>Entering a region forces a full blocking (gen-2) collection first, so this costs a few milliseconds with a
/// large live heap. Inference does not use it: the forward pass passes only Scalars it holds itself
/// (<see cref="Model.ScalarMath"/>). Training steps and evaluation batches do: the flat AdamW
/// (<see cref="Training.MaeFlatAdamW"/>) and the loss still pass implicit Scalars.</para>
/// </summary>
internal readonly struct NoGcScope : IDisposable
{
    /// <summary>Budget of a training step: reserved, not committed up front; other threads may allocate this much
    /// during a step before a collection happens anyway.</summary>
    public const long TrainingBudget = 256L << 20;
    readonly bool started;

    NoGcScope(bool started) => this.started = started;

    public static NoGcScope Enter(long budget)
    {
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return new NoGcScope(false); // nested
        try { return new NoGcScope(GC.TryStartNoGCRegion(budget)); }
        catch (ArgumentOutOfRangeException) { return new NoGcScope(false); }
        catch (InvalidOperationException) { return new NoGcScope(false); }
    }

    public void Dispose()
    {
        if (!started || GCSettings.LatencyMode != GCLatencyMode.NoGCRegion) return;
        try { GC.EndNoGCRegion(); }
        catch (InvalidOperationException) { } // a collection happened after all (budget exceeded): nothing to end
    }
}
