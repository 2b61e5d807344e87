using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The job's collective over NCCL (<c>libnccl.so.2</c>, as CUDA builds of PyTorch ship it) for CUDA tensors, one GPU
/// per rank (cuda:<see cref="LocalRank"/>); CPU tensors (small control values) go over MPI. MPI starts the job and carries the bootstrap: rank 0's
/// <c>ncclUniqueId</c> is broadcast over MPI, then every rank calls <c>ncclCommInitRank</c>. Operations are queued on
/// the legacy default CUDA stream (stream 0, the one libtorch uses unless told otherwise), so they are ordered after
/// the backward pass that produced the gradient and before the optimizer kernels; the host waits for completion
/// under the same watchdog as MPI (a timeout calls <c>ncclCommAbort</c>, then <c>MPI_Abort</c>).
/// Compiled and documented here; it runs only where NCCL and a GPU are (not on the CPU machines this was built on).
/// </summary>
internal sealed unsafe class MaeNcclCollective : IMaeCollective, IDisposable
{
    readonly MaeMpiCollective mpi;
    readonly CollectiveWatchdog watchdog;
    nint comm;

    public int Rank => mpi.Rank;
    public int WorldSize => mpi.WorldSize;
    public int LocalRank => mpi.LocalRank;
    public string Name => "NCCL";

    MaeNcclCollective(MaeMpiCollective mpi, nint comm)
    {
        this.mpi = mpi;
        this.comm = comm;
        watchdog = new CollectiveWatchdog($"rank {mpi.Rank} of {mpi.WorldSize} (NCCL)", mpi.Timeout, _ =>
        {
            NcclNative.ncclCommAbort(this.comm);
            mpi.Abort("NCCL operation timed out (see above).");
        });
    }

    /// <summary>Creates the NCCL communicator of all MPI ranks (one per process).</summary>
    public static MaeNcclCollective Create(MaeMpiCollective mpi)
    {
        ArgumentNullException.ThrowIfNull(mpi);
        NcclNative.Load();
        if (!cuda.is_available())
            throw new MaeCollectiveException($"NCCL needs a CUDA device, and rank {mpi.Rank} sees none (TorchSharp's CUDA backend is not loaded or no GPU is visible).");
        using var id = zeros(NcclNative.UniqueIdBytes, dtype: ScalarType.Byte);
        if (mpi.Rank == 0)
            NcclNative.Check(NcclNative.ncclGetUniqueId((byte*)TensorMemory.Address(id)), "ncclGetUniqueId");
        mpi.Broadcast(id, 0);
        NcclNative.UniqueId uid;
        new ReadOnlySpan<byte>((void*)TensorMemory.Address(id), NcclNative.UniqueIdBytes).CopyTo(new Span<byte>(uid.Bytes, NcclNative.UniqueIdBytes));
        nint c;
        // ncclCommInitRank binds the communicator to the current CUDA device: select cuda:LocalRank first.
        NcclNative.Check(NcclNative.cudaSetDevice(mpi.LocalRank), "cudaSetDevice");
        NcclNative.Check(NcclNative.ncclCommInitRank(&c, mpi.WorldSize, uid, mpi.Rank), "ncclCommInitRank");
        return new MaeNcclCollective(mpi, c);
    }

    public void AllReduceMean(Tensor tensor)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: true);
        if (tensor.device_type == DeviceType.CPU) { mpi.AllReduceMean(tensor); return; } // small host-side values
        CheckCuda(tensor, "all-reduce");
        if (WorldSize == 1) return;
        using (watchdog.Enter($"NCCL all-reduce of {tensor.numel()} floats"))
        {
            NcclNative.Check(NcclNative.ncclAllReduce(TensorMemory.Address(tensor), TensorMemory.Address(tensor), (nuint)tensor.numel(),
                NcclNative.Float32, NcclNative.Avg, comm, 0), "ncclAllReduce");
            NcclNative.Check(NcclNative.cudaStreamSynchronize(0), "cudaStreamSynchronize");
        }
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: false);
        if (tensor.device_type == DeviceType.CPU) { mpi.Broadcast(tensor, root); return; }
        CheckCuda(tensor, "broadcast");
        if (WorldSize == 1) return;
        using (watchdog.Enter($"NCCL broadcast from rank {root}"))
        {
            NcclNative.Check(NcclNative.ncclBroadcast(TensorMemory.Address(tensor), TensorMemory.Address(tensor), (nuint)(tensor.numel() * tensor.ElementSize),
                NcclNative.Uint8, root, comm, 0), "ncclBroadcast");
            NcclNative.Check(NcclNative.cudaStreamSynchronize(0), "cudaStreamSynchronize");
        }
    }

    public void Barrier() => mpi.Barrier();

    void CheckCuda(Tensor tensor, string op)
    {
        if (tensor.device_type != DeviceType.CUDA)
            throw new ArgumentException($"The NCCL collective's {op} works on CUDA tensors; got one on {tensor.device}. Use MaeMpiCollective for CPU training.", nameof(tensor));
    }

    public void Dispose()
    {
        if (comm == 0) return;
        NcclNative.ncclCommDestroy(comm);
        comm = 0;
    }
}

/// <summary>The NCCL 2 and CUDA runtime functions <see cref="MaeNcclCollective"/> uses (nccl.h, cuda_runtime_api.h).</summary>
static unsafe class NcclNative
{
    public const string Library = "libnccl.so.2";
    public const string CudaRuntime = "libcudart.so";
    public const int UniqueIdBytes = 128; // NCCL_UNIQUE_ID_BYTES
    public const int Float32 = 7, Uint8 = 1; // ncclFloat32, ncclUint8
    public const int Avg = 4;                // ncclAvg (NCCL ≥ 2.10)

    public struct UniqueId { public fixed byte Bytes[UniqueIdBytes]; }

    public static void Load()
    {
        foreach (var lib in new[] { Library, CudaRuntime })
            if (!NativeLibrary.TryLoad(lib, typeof(NcclNative).Assembly, null, out _))
                throw new MaeCollectiveException(
                    $"{lib} could not be loaded: NCCL training needs the CUDA runtime and NCCL (they come with CUDA builds of PyTorch; put their folder on LD_LIBRARY_PATH).");
    }

    public static void Check(int code, string function)
    {
        if (code == 0) return;
        string detail = function.StartsWith("cuda", StringComparison.Ordinal) ? $"CUDA error {code}" : $"NCCL error {code}: {Marshal.PtrToStringAnsi(ncclGetErrorString(code))}";
        throw new MaeCollectiveException($"{function} failed ({detail}).");
    }

    [DllImport(Library)] public static extern int ncclGetUniqueId(byte* uniqueId);
    [DllImport(Library)] public static extern int ncclCommInitRank(nint* comm, int nranks, UniqueId commId, int rank);
    [DllImport(Library)] public static extern int ncclAllReduce(nint sendbuff, nint recvbuff, nuint count, int datatype, int op, nint comm, nint stream);
    [DllImport(Library)] public static extern int ncclBroadcast(nint sendbuff, nint recvbuff, nuint count, int datatype, int root, nint comm, nint stream);
    [DllImport(Library)] public static extern int ncclCommAbort(nint comm);
    [DllImport(Library)] public static extern int ncclCommDestroy(nint comm);
    [DllImport(Library)] public static extern nint ncclGetErrorString(int result);
    [DllImport(CudaRuntime)] public static extern int cudaSetDevice(int device);
    [DllImport(CudaRuntime)] public static extern int cudaStreamSynchronize(nint stream);
}
