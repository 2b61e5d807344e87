namespace Mae.MLNet.Runtime;

/// <summary>
/// The process-wide libtorch settings a training run changes (intra-op threads; TF32 matrix math on CUDA), put back
/// as they were on <see cref="Dispose"/>, so a run leaves the caller's process as it found it.
/// </summary>
internal sealed class TorchSettingsScope : IDisposable
{
    readonly int? threadsBefore;
    readonly (bool Matmul, bool Cudnn)? tf32Before;
    bool disposed;

    /// <param name="threads">Intra-op threads for the scope, or null to leave the setting alone.</param>
    /// <param name="allowTf32">Allow TF32 for the scope (<see cref="TorchRuntime.AllowTf32"/>), or false to leave the
    /// setting alone.</param>
    public TorchSettingsScope(int? threads = null, bool allowTf32 = false)
    {
        if (threads is int t && t < 1) throw new ArgumentOutOfRangeException(nameof(threads), t, "The thread count must be at least 1 (or null to keep it).");
        if (threads is int n)
        {
            threadsBefore = TorchRuntime.Threads;
            TorchRuntime.Threads = n;
        }
        if (allowTf32)
        {
            tf32Before = TorchRuntime.Tf32;
            TorchRuntime.AllowTf32();
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        if (threadsBefore is int t) TorchRuntime.Threads = t;
        if (tf32Before is var (matmul, cudnn)) TorchRuntime.SetTf32(matmul, cudnn);
    }
}
