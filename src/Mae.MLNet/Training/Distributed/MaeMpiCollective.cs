using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The job's collective over Open MPI (<c>MPI_COMM_WORLD</c>) for CPU tensors. Start the program with
/// <c>mpirun -np N dotnet app.dll</c>; <see cref="World"/> initialises MPI once per process
/// (<c>MPI_Init_thread</c>, serialized) and finalises it at process exit. Every operation is guarded by a
/// watchdog: a wait longer than <see cref="Timeout"/> (default 10 min, or <c>MAE_COLLECTIVE_TIMEOUT_S</c> seconds)
/// prints which rank waited where and calls <c>MPI_Abort</c>, so a dead or hung rank ends the job instead of
/// hanging it. Open MPI is not CUDA-aware here: CUDA tensors go through <see cref="MaeNcclCollective"/>.
/// </summary>
internal sealed unsafe class MaeMpiCollective : IMaeCollective
{
    static readonly object InitLock = new();
    static MaeMpiCollective? world;
    readonly CollectiveWatchdog watchdog;

    /// <summary>MPI_COMM_WORLD of this process (MPI initialised on first use).</summary>
    public static MaeMpiCollective World
    {
        get
        {
            lock (InitLock) return world ??= Initialize();
        }
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public int LocalRank { get; }
    public string Name => "MPI";

    /// <summary>The longest wait inside one collective before the job is aborted.</summary>
    public TimeSpan Timeout
    {
        get => watchdog.Timeout;
        set
        {
            if (value <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(value), value, "The collective timeout must be positive.");
            watchdog.Timeout = value;
        }
    }

    MaeMpiCollective(int rank, int size, int localRank)
    {
        Rank = rank;
        WorldSize = size;
        LocalRank = localRank;
        watchdog = new CollectiveWatchdog($"rank {rank} of {size}", DefaultTimeout(), message => AbortJob(1));
    }

    static MaeMpiCollective Initialize()
    {
        MpiNative.Load();
        int flag;
        Check(MpiNative.MPI_Initialized(&flag), "MPI_Initialized");
        if (flag == 0)
        {
            int provided;
            Check(MpiNative.MPI_Init_thread(null, null, MpiNative.ThreadSerialized, &provided), "MPI_Init_thread");
            // Finalize once at exit; a rank that dies without it makes mpirun end the job.
            AppDomain.CurrentDomain.ProcessExit += (_, _) => Shutdown();
        }
        int rank, size;
        Check(MpiNative.MPI_Comm_rank(MpiNative.CommWorld, &rank), "MPI_Comm_rank");
        Check(MpiNative.MPI_Comm_size(MpiNative.CommWorld, &size), "MPI_Comm_size");
        // Rank and size are MPI's; the local rank (which GPU) is the launcher's (mpirun, srun, PMI, LOCAL_RANK).
        return new MaeMpiCollective(rank, size, MaeLaunchInfo.Detect().LocalRank);
    }

    internal static TimeSpan DefaultTimeout()
    {
        var text = Environment.GetEnvironmentVariable("MAE_COLLECTIVE_TIMEOUT_S");
        if (string.IsNullOrWhiteSpace(text)) return TimeSpan.FromMinutes(10);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || !(s > 0))
            throw new MaeCollectiveException($"MAE_COLLECTIVE_TIMEOUT_S is '{text}'; expected a positive number of seconds.");
        return TimeSpan.FromSeconds(s);
    }

    /// <summary>Finalises MPI if it was initialised and not yet finalised (runs at process exit by itself).</summary>
    public static void Shutdown()
    {
        lock (InitLock)
        {
            if (world is null) return;
            int done;
            if (MpiNative.MPI_Finalized(&done) == 0 && done == 0) MpiNative.MPI_Finalize();
        }
    }

    /// <summary>Ends every rank of the job (<c>MPI_Abort</c>) after writing <paramref name="message"/> to stderr:
    /// what a rank should do when it fails while others may be waiting in a collective.</summary>
    public void Abort(string message, int errorCode = 1)
    {
        Console.Error.WriteLine($"Mae.MLNet rank {Rank} of {WorldSize}: {message}");
        Console.Error.Flush();
        AbortJob(errorCode);
    }

    void IMaeCollective.Abort(string message) => Abort(message);

    /// <summary>Guards a blocking call made for this job outside the collective operations (NCCL's communicator setup)
    /// with the same watchdog: past <see cref="Timeout"/> the job is aborted.</summary>
    internal CollectiveWatchdog.Guard Watch(string operation) => watchdog.Enter(operation);

    static void AbortJob(int code)
    {
        MpiNative.MPI_Abort(MpiNative.CommWorld, code);
        Environment.Exit(code); // MPI_Abort does not return; if it did, a non-zero exit still makes mpirun end the job
    }

    public void AllReduceMean(Tensor tensor)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: true);
        CheckCpu(tensor, "all-reduce");
        if (WorldSize == 1) return;
        long n = tensor.numel();
        using (watchdog.Enter($"all-reduce of {n} floats"))
        {
            nint data = TensorMemory.Address(tensor);
            for (long off = 0; off < n; off += Chunk)
            {
                int count = (int)Math.Min(Chunk, n - off);
                Check(MpiNative.MPI_Allreduce(MpiNative.InPlace, data + (nint)(off * sizeof(float)), count, MpiNative.Float, MpiNative.OpSum, MpiNative.CommWorld), "MPI_Allreduce");
            }
        }
        using (no_grad())
        using (var worldSize = WorldSize.ToScalar()) // held for the native call: see ScalarMath
            tensor.div_(worldSize);
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: false);
        CheckCpu(tensor, "broadcast");
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"The root must be a rank in 0 … {WorldSize - 1}.");
        if (WorldSize == 1) return;
        long bytes = tensor.numel() * tensor.ElementSize;
        using (watchdog.Enter($"broadcast of {bytes} bytes from rank {root}"))
        {
            nint data = TensorMemory.Address(tensor);
            for (long off = 0; off < bytes; off += Chunk)
                Check(MpiNative.MPI_Bcast(data + (nint)off, (int)Math.Min(Chunk, bytes - off), MpiNative.Byte, root, MpiNative.CommWorld), "MPI_Bcast");
        }
    }

    public void Barrier()
    {
        if (WorldSize == 1) return;
        using (watchdog.Enter("barrier")) Check(MpiNative.MPI_Barrier(MpiNative.CommWorld), "MPI_Barrier");
    }

    const long Chunk = 1 << 30; // MPI counts are int

    void CheckCpu(Tensor tensor, string op)
    {
        if (tensor.device_type != DeviceType.CPU)
            throw new ArgumentException(
                $"The MPI collective's {op} works on CPU tensors; got one on {tensor.device}. Use MaeNcclCollective (MaeCollective.FromEnvironment(useNcclOnCuda: true)) for CUDA training.", nameof(tensor));
    }

    static void Check(int code, string function)
    {
        // The default error handler (MPI_ERRORS_ARE_FATAL) aborts before a code returns; this covers handlers set elsewhere.
        if (code != 0) throw new MaeCollectiveException($"{function} failed with MPI error code {code}.");
    }
}
