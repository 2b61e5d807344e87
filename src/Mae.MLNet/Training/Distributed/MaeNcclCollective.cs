using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The job's collective over NCCL (<c>libnccl.so.2</c>, as CUDA builds of PyTorch ship it) for CUDA tensors, one GPU
/// per rank (<see cref="MaeLaunchInfo.CudaDevice"/>: the rank's only visible GPU, else cuda:<see cref="LocalRank"/>); CPU
/// tensors (small control values: the stop flag, losses) go over MPI. MPI starts the job and carries the bootstrap: rank
/// 0's <c>ncclUniqueId</c> is broadcast over MPI, then every rank calls <c>ncclCommInitRank</c> under the collective
/// watchdog (a rank that never arrives aborts the job after the timeout instead of hanging it). Operations are queued
/// on the legacy default CUDA stream (stream 0, the one libtorch uses unless told otherwise), so they are ordered after
/// the backward pass that produced the gradient and before the optimizer kernels. The host then polls the stream and
/// <c>ncclCommGetAsyncError</c>: an asynchronous NCCL error (a peer died, a network failure) aborts the communicator
/// and the job with NCCL's message; a wait longer than the timeout does the same. One communicator per process
/// (<see cref="Create"/> returns the same one), destroyed at process exit or by <see cref="Dispose"/>.
/// </summary>
internal sealed unsafe class MaeNcclCollective : IMaeCollective, IDisposable
{
    static readonly object CreateLock = new();
    static MaeNcclCollective? current;
    readonly MaeMpiCollective mpi;
    readonly CollectiveWatchdog watchdog;
    nint comm;

    public int Rank => mpi.Rank;
    public int WorldSize => mpi.WorldSize;
    public int LocalRank => mpi.LocalRank;
    public string Name => "NCCL";
    /// <summary>The CUDA device this rank's communicator is bound to.</summary>
    public int Device { get; }

    MaeNcclCollective(MaeMpiCollective mpi, nint comm, int device)
    {
        this.mpi = mpi;
        this.comm = comm;
        Device = device;
        watchdog = new CollectiveWatchdog($"rank {mpi.Rank} of {mpi.WorldSize} (NCCL)", mpi.Timeout, _ => Abort("NCCL operation timed out (see above)."));
    }

    /// <summary>The NCCL communicator of all MPI ranks, one per process: created on the first call (collectively: every
    /// rank must call it), the same instance afterwards.</summary>
    public static MaeNcclCollective Create(MaeMpiCollective mpi)
    {
        ArgumentNullException.ThrowIfNull(mpi);
        lock (CreateLock)
        {
            if (current is { comm: not 0 }) return current;
            NcclNative.Load();
            if (!cuda.is_available())
                throw new MaeCollectiveException($"NCCL needs a CUDA device, and rank {mpi.Rank} sees none (TorchSharp's CUDA backend is not loaded or no GPU is visible).");
            int device = MaeLaunchInfo.CudaDevice(mpi.LocalRank, cuda.device_count());
            using var id = zeros(NcclNative.UniqueIdBytes, dtype: ScalarType.Byte);
            if (mpi.Rank == 0)
                NcclNative.Check(NcclNative.ncclGetUniqueId((byte*)TensorMemory.Address(id)), "ncclGetUniqueId");
            mpi.Broadcast(id, 0);
            NcclNative.UniqueId uid;
            new ReadOnlySpan<byte>((void*)TensorMemory.Address(id), NcclNative.UniqueIdBytes).CopyTo(new Span<byte>(uid.Bytes, NcclNative.UniqueIdBytes));
            nint c;
            // ncclCommInitRank binds the communicator to the current CUDA device: select this rank's GPU first.
            NcclNative.CheckCuda(NcclNative.SetDevice(device), "cudaSetDevice");
            using (mpi.Watch($"NCCL communicator setup on cuda:{device}"))
                NcclNative.Check(NcclNative.ncclCommInitRank(&c, mpi.WorldSize, uid, mpi.Rank), "ncclCommInitRank");
            current = new MaeNcclCollective(mpi, c, device);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => current?.Dispose();
            return current;
        }
    }

    public void AllReduceMean(Tensor tensor)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: true);
        if (tensor.device_type == DeviceType.CPU) { mpi.AllReduceMean(tensor); return; } // small host-side values
        CheckCuda(tensor, "all-reduce");
        if (WorldSize == 1) return;
        string op = $"NCCL all-reduce of {tensor.numel()} floats";
        using (watchdog.Enter(op))
        {
            NcclNative.Check(NcclNative.ncclAllReduce(TensorMemory.Address(tensor), TensorMemory.Address(tensor), (nuint)tensor.numel(),
                NcclNative.Float32, NcclNative.Avg, comm, 0), "ncclAllReduce");
            Complete(op);
        }
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: false);
        if (tensor.device_type == DeviceType.CPU) { mpi.Broadcast(tensor, root); return; }
        CheckCuda(tensor, "broadcast");
        if (WorldSize == 1) return;
        string op = $"NCCL broadcast from rank {root}";
        using (watchdog.Enter(op))
        {
            NcclNative.Check(NcclNative.ncclBroadcast(TensorMemory.Address(tensor), TensorMemory.Address(tensor), (nuint)(tensor.numel() * tensor.ElementSize),
                NcclNative.Uint8, root, comm, 0), "ncclBroadcast");
            Complete(op);
        }
    }

    /// <summary>Waits for the queued operation by polling the stream and NCCL's asynchronous error (a blocking
    /// <c>cudaStreamSynchronize</c> would never see a peer's failure); an error ends the job with NCCL's message.</summary>
    void Complete(string op)
    {
        var spin = new SpinWait();
        while (true)
        {
            int q = NcclNative.StreamQuery(0);
            if (q == NcclNative.CudaSuccess) return;
            if (q != NcclNative.CudaErrorNotReady) Abort($"{op}: the CUDA stream failed (CUDA error {q}).");
            int async;
            NcclNative.Check(NcclNative.ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError");
            if (NcclNative.IsAsyncFailure(async))
                Abort($"{op}: NCCL reported an asynchronous error {async} ({NcclNative.ErrorString(async)}): another rank died or the network failed.");
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    public void Barrier() => mpi.Barrier();

    /// <summary>Aborts the communicator (so no kernel waits on a dead peer), then the job (<c>MPI_Abort</c>).</summary>
    public void Abort(string message)
    {
        if (comm != 0) NcclNative.ncclCommAbort(comm);
        mpi.Abort(message);
    }

    void CheckCuda(Tensor tensor, string op)
    {
        if (tensor.device_type != DeviceType.CUDA)
            throw new ArgumentException($"The NCCL collective's {op} works on CUDA tensors; got one on {tensor.device}. Use MaeMpiCollective for CPU training.", nameof(tensor));
    }

    /// <summary>Destroys the communicator (every rank should, after its last operation); later calls do nothing.</summary>
    public void Dispose()
    {
        lock (CreateLock)
        {
            if (comm == 0) return;
            NcclNative.ncclCommDestroy(comm);
            comm = 0;
        }
    }
}

/// <summary>The NCCL 2 and CUDA runtime functions <see cref="MaeNcclCollective"/> uses (nccl.h, cuda_runtime_api.h).
/// The CUDA runtime is looked up by name at run time: PyTorch wheels ship <c>libcudart.so.12</c> (CUDA 12) or
/// <c>.so.13</c>, a CUDA toolkit the unversioned <c>libcudart.so</c>.</summary>
static unsafe class NcclNative
{
    public const string Library = "libnccl.so.2";
    /// <summary>The CUDA runtime's names, tried in this order.</summary>
    public static readonly string[] CudaRuntimes = { "libcudart.so.12", "libcudart.so.13", "libcudart.so" };
    public const int UniqueIdBytes = 128; // NCCL_UNIQUE_ID_BYTES
    public const int Float32 = 7, Uint8 = 1; // ncclFloat32, ncclUint8
    public const int Avg = 4;                // ncclAvg (NCCL ≥ 2.10)
    public const int InProgress = 7;         // ncclInProgress (NCCL ≥ 2.14): a non-blocking call still running, not an error
    public const int CudaSuccess = 0, CudaErrorNotReady = 600;

    public struct UniqueId { public fixed byte Bytes[UniqueIdBytes]; }

    static delegate* unmanaged<int, int> cudaSetDevice;
    static delegate* unmanaged<nint, int> cudaStreamQuery;

    public static int SetDevice(int device) => cudaSetDevice(device);
    public static int StreamQuery(nint stream) => cudaStreamQuery(stream);

    /// <summary>Whether <c>ncclCommGetAsyncError</c>'s result means the communicator failed.</summary>
    public static bool IsAsyncFailure(int result) => result != 0 && result != InProgress;

    /// <summary>The first of <paramref name="names"/> that <paramref name="tryLoad"/> opens, or null.</summary>
    internal static string? FirstLoadable(IEnumerable<string> names, Func<string, bool> tryLoad) => names.FirstOrDefault(tryLoad);

    public static void Load()
    {
        if (cudaStreamQuery != null) return;
        if (!NativeLibrary.TryLoad(Library, typeof(NcclNative).Assembly, null, out _))
            throw new MaeCollectiveException(
                $"{Library} could not be loaded: NCCL training needs NCCL and the CUDA runtime (they come with CUDA builds of PyTorch; put their folder on LD_LIBRARY_PATH).");
        nint cudart = 0;
        if (FirstLoadable(CudaRuntimes, name => NativeLibrary.TryLoad(name, typeof(NcclNative).Assembly, null, out cudart)) is null)
            throw new MaeCollectiveException(
                $"The CUDA runtime could not be loaded (tried {string.Join(", ", CudaRuntimes)}): NCCL training needs it (CUDA builds of PyTorch ship it under nvidia/cuda_runtime/lib; put that folder on LD_LIBRARY_PATH).");
        cudaSetDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(cudart, "cudaSetDevice");
        cudaStreamQuery = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(cudart, "cudaStreamQuery");
    }

    public static string ErrorString(int code) => Marshal.PtrToStringAnsi(ncclGetErrorString(code)) ?? $"error {code}";

    public static void Check(int code, string function)
    {
        if (code != 0) throw new MaeCollectiveException($"{function} failed (NCCL error {code}: {ErrorString(code)}).");
    }

    public static void CheckCuda(int code, string function)
    {
        if (code != 0) throw new MaeCollectiveException($"{function} failed (CUDA error {code}).");
    }

    [DllImport(Library)] public static extern int ncclGetUniqueId(byte* uniqueId);
    [DllImport(Library)] public static extern int ncclCommInitRank(nint* comm, int nranks, UniqueId commId, int rank);
    [DllImport(Library)] public static extern int ncclAllReduce(nint sendbuff, nint recvbuff, nuint count, int datatype, int op, nint comm, nint stream);
    [DllImport(Library)] public static extern int ncclBroadcast(nint sendbuff, nint recvbuff, nuint count, int datatype, int root, nint comm, nint stream);
    [DllImport(Library)] public static extern int ncclCommGetAsyncError(nint comm, int* asyncError);
    [DllImport(Library)] public static extern int ncclCommAbort(nint comm);
    [DllImport(Library)] public static extern int ncclCommDestroy(nint comm);
    [DllImport(Library)] public static extern nint ncclGetErrorString(int result);
}
