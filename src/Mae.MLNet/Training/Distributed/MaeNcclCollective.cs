using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The job's collective over NCCL (<c>libnccl.so.2</c>, as CUDA builds of PyTorch ship it) for CUDA tensors, one GPU
/// per rank (<see cref="MaeLaunchInfo.CudaDevice"/>: the rank's only visible GPU, else cuda:<see cref="LocalRank"/>). Two
/// ways to start: under an MPI launcher (<see cref="Create"/>) MPI carries the bootstrap (rank 0's <c>ncclUniqueId</c> is
/// broadcast over MPI) and the small CPU control values (the stop flag, losses); under torchrun-style variables without
/// MPI (<see cref="CreateFromEnvironment"/>) rank 0 serves the id over TCP (<see cref="NcclRendezvous"/>), CPU values go
/// over NCCL through a GPU copy, and an abort ends this process with an error code (torchrun's agent then stops the
/// others). Every rank calls <c>ncclCommInitRank</c> under the collective watchdog (a rank that never arrives aborts
/// the job after the timeout instead of hanging it). Operations are queued
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
    /// <summary>The MPI job underneath, or null under a torchrun-style launch (control values then go over NCCL too).</summary>
    readonly MaeMpiCollective? mpi;
    readonly CollectiveWatchdog watchdog;
    nint comm;

    public int Rank { get; }
    public int WorldSize { get; }
    public int LocalRank { get; }
    public string Name => "NCCL";
    /// <summary>The CUDA device this rank's communicator is bound to.</summary>
    public int Device { get; }

    MaeNcclCollective(MaeMpiCollective? mpi, int rank, int worldSize, int localRank, CollectiveWatchdog watchdog, int device)
    {
        this.mpi = mpi;
        (Rank, WorldSize, LocalRank, Device) = (rank, worldSize, localRank, device);
        this.watchdog = watchdog;
    }

    /// <summary>The NCCL communicator of all MPI ranks, one per process: created on the first call (collectively: every
    /// rank must call it), the same instance afterwards.</summary>
    public static MaeNcclCollective Create(MaeMpiCollective mpi)
    {
        ArgumentNullException.ThrowIfNull(mpi);
        return Form(mpi, mpi.Rank, mpi.WorldSize, mpi.LocalRank, mpi.Timeout, make =>
        {
            using var id = zeros(NcclNative.UniqueIdBytes, dtype: ScalarType.Byte);
            if (mpi.Rank == 0) make().CopyTo(new Span<byte>((void*)TensorMemory.Address(id), NcclNative.UniqueIdBytes));
            mpi.Broadcast(id, 0);
            return new ReadOnlySpan<byte>((void*)TensorMemory.Address(id), NcclNative.UniqueIdBytes).ToArray();
        });
    }

    /// <summary>The NCCL communicator of a torchrun-style job (<c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>,
    /// <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>; no MPI): rank 0 serves the id over TCP (<see cref="NcclRendezvous"/>).</summary>
    public static MaeNcclCollective CreateFromEnvironment(MaeLaunchInfo launch, Func<string, string?> variable)
    {
        var (address, port) = NcclRendezvous.Endpoint(variable);
        var timeout = MaeMpiCollective.DefaultTimeout();
        return Form(null, launch.Rank, launch.WorldSize, launch.LocalRank, timeout,
            make => NcclRendezvous.Exchange(launch.Rank, launch.WorldSize, address, port, make, timeout));
    }

    static MaeNcclCollective Form(MaeMpiCollective? mpi, int rank, int worldSize, int localRank, TimeSpan timeout, Func<Func<byte[]>, byte[]> shareId)
    {
        lock (CreateLock)
        {
            if (current is { comm: not 0 }) return current;
            NcclNative.Load();
            if (!cuda.is_available())
                throw new MaeCollectiveException($"NCCL needs a CUDA device, and rank {rank} sees none (TorchSharp's CUDA backend is not loaded or no GPU is visible).");
            int device = MaeLaunchInfo.CudaDevice(localRank, cuda.device_count());
            var bytes = shareId(() =>
            {
                var id = new byte[NcclNative.UniqueIdBytes];
                fixed (byte* p = id) NcclNative.Check(NcclNative.ncclGetUniqueId(p), "ncclGetUniqueId");
                return id;
            });
            NcclNative.UniqueId uid;
            bytes.AsSpan(0, NcclNative.UniqueIdBytes).CopyTo(new Span<byte>(uid.Bytes, NcclNative.UniqueIdBytes));
            MaeNcclCollective? made = null;
            var watchdog = new CollectiveWatchdog($"rank {rank} of {worldSize} (NCCL)", timeout,
                _ => (made ?? throw new MaeCollectiveException("NCCL communicator setup timed out")).Abort("NCCL operation timed out (see above)."));
            made = new MaeNcclCollective(mpi, rank, worldSize, localRank, watchdog, device);
            // ncclCommInitRank binds the communicator to the current CUDA device: select this rank's GPU first.
            NcclNative.CheckCuda(NcclNative.SetDevice(device), "cudaSetDevice");
            nint c;
            using (watchdog.Enter($"NCCL communicator setup on cuda:{device}"))
                NcclNative.Check(NcclNative.ncclCommInitRank(&c, worldSize, uid, rank), "ncclCommInitRank");
            made.comm = c;
            current = made;
            AppDomain.CurrentDomain.ProcessExit += (_, _) => current?.Dispose();
            return current;
        }
    }

    /// <summary>A CPU tensor through an operation on its copy on this rank's GPU (torchrun-style: no MPI for host values).</summary>
    void OnGpu(Tensor cpu, Action<Tensor> op)
    {
        using var onGpu = cpu.to(new torch.Device(DeviceType.CUDA, Device));
        op(onGpu);
        using var back = onGpu.cpu();
        cpu.copy_(back);
    }

    public void AllReduceMean(Tensor tensor)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: true);
        if (tensor.device_type == DeviceType.CPU)   // small host-side values
        {
            if (mpi is not null) mpi.AllReduceMean(tensor);
            else OnGpu(tensor, AllReduceMean);
            return;
        }
        CheckCuda(tensor, "all-reduce");   // one rank too (an identity): the path a GPU check exercises
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
        if (tensor.device_type == DeviceType.CPU)
        {
            if (mpi is not null) mpi.Broadcast(tensor, root);
            else OnGpu(tensor, t => Broadcast(t, root));
            return;
        }
        CheckCuda(tensor, "broadcast");
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

    public void Barrier()
    {
        if (mpi is not null) { mpi.Barrier(); return; }
        using var one = ones(1, device: new torch.Device(DeviceType.CUDA, Device));
        AllReduceMean(one);
    }

    /// <summary>Aborts the communicator (so no kernel waits on a dead peer), then the job: <c>MPI_Abort</c>, or without
    /// MPI this process with exit code 1 (torchrun's agent stops the other workers when one fails).</summary>
    public void Abort(string message)
    {
        nint c = comm;
        comm = 0;
        if (c != 0) NcclNative.ncclCommAbort(c);
        if (mpi is not null) mpi.Abort(message);
        Console.Error.WriteLine($"Mae.MLNet rank {Rank} of {WorldSize} (NCCL): {message}");
        Console.Error.Flush();
        Environment.Exit(1);
    }

    void CheckCuda(Tensor tensor, string op)
    {
        if (tensor.device_type != DeviceType.CUDA)
            throw new ArgumentException($"The NCCL collective's {op} works on CUDA tensors; got one on {tensor.device}. Use MaeMpiCollective for CPU training.", nameof(tensor));
    }

    /// <summary>Destroys the communicator (every rank should, after its last operation); later calls do nothing.</summary>
    public void Dispose()
    {
        if (comm == 0) return;   // aborted (perhaps while setup holds the lock: never wait for it at exit)
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
