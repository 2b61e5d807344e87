using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The collective operations data-parallel training needs (the part of PyTorch's <c>torch.distributed</c> that DDP
/// uses): every process ("rank") of a job calls each operation in the same order. Implementations:
/// <see cref="MaeCollective.Single"/> (one process, no communication), <see cref="MaeMpiCollective"/> (Open MPI,
/// CPU tensors) and <see cref="MaeNcclCollective"/> (NCCL, CUDA tensors, bootstrapped over MPI).
/// </summary>
public interface IMaeCollective
{
    /// <summary>This process's rank, 0 … <see cref="WorldSize"/> − 1. Rank 0 writes checkpoints, metrics and progress.</summary>
    int Rank { get; }
    /// <summary>Number of processes in the job.</summary>
    int WorldSize { get; }
    /// <summary>This process's rank among those on the same machine (picks the GPU: cuda:LocalRank).</summary>
    int LocalRank { get; }
    /// <summary>A short name for messages ("single process", "MPI", "NCCL").</summary>
    string Name { get; }

    /// <summary>Replaces the contiguous float32 <paramref name="tensor"/> in place by the mean of it over all ranks
    /// (sum, then divided by <see cref="WorldSize"/>).</summary>
    void AllReduceMean(Tensor tensor);
    /// <summary>Overwrites the contiguous <paramref name="tensor"/> on every rank with rank <paramref name="root"/>'s.</summary>
    void Broadcast(Tensor tensor, int root = 0);
    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();
    /// <summary>Ends every rank of the job at once (<c>MPI_Abort</c>) after writing <paramref name="message"/> to stderr:
    /// what a rank must do when it fails alone while the others may wait for it in a collective. Does not return,
    /// except in a single process, which has no other rank to end (the caller's exception then goes on).</summary>
    void Abort(string message);
}

/// <summary>Finding and creating the job's collective.</summary>
public static class MaeCollective
{
    /// <summary>One process, world size 1: every operation returns at once.</summary>
    public static IMaeCollective Single { get; } = new SingleProcessCollective();

    /// <summary>
    /// The collective of the job this process was started in (<see cref="MaeLaunchInfo.Detect()"/>): under Open MPI's
    /// <c>mpirun</c>, a Slurm step (<c>srun --mpi=pmix</c>) or another PMI / PMIx launcher the MPI collective — on CUDA
    /// with <paramref name="useNcclOnCuda"/> the NCCL one bootstrapped over MPI — whose rank and size MPI gives, checked
    /// against the launcher's (<see cref="MaeLaunchInfo.CheckFormed"/>); without a launcher, or with a world of one,
    /// <see cref="Single"/>. The torchrun-style variables (<c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>,
    /// <c>MASTER_ADDR</c>/<c>MASTER_PORT</c>) with <c>WORLD_SIZE</c> &gt; 1 and no MPI launcher bootstrap NCCL on CUDA
    /// (rank 0 serves NCCL's id on <c>MASTER_PORT</c> + 1); for CPU training they are refused, naming mpirun and srun
    /// (Open MPI joins only the processes its own launcher started). Never a silent "rank 0 of 1".
    /// </summary>
    public static IMaeCollective FromEnvironment(bool useNcclOnCuda = false) => FromLaunch(MaeLaunchInfo.Detect(), useNcclOnCuda);

    /// <summary>As <see cref="FromEnvironment(bool)"/> for a training device option: NCCL when the job has more than
    /// one rank and the device resolves to CUDA (<see cref="MaeDevice.Auto"/> on a machine with CUDA, or
    /// <see cref="MaeDevice.Cuda"/>), MPI otherwise.</summary>
    public static IMaeCollective ForDevice(MaeDevice device)
    {
        var launch = MaeLaunchInfo.Detect();
        return FromLaunch(launch, UsesNccl(device, launch, TorchRuntime.CudaAvailable));
    }

    /// <summary>The job's collective once <see cref="FromEnvironment(bool)"/> has formed one over MPI (or NCCL), else null.
    /// What a host program's last catch needs: <c>MaeCollective.Joined?.Abort(message)</c> ends every rank when this one
    /// fails outside training (the training engine does it by itself for failures inside training).</summary>
    public static IMaeCollective? Joined => joined;

    static volatile IMaeCollective? joined;

    /// <summary>THE rule for the gradient transport: NCCL for a multi-rank job on CUDA.</summary>
    internal static bool UsesNccl(MaeDevice device, MaeLaunchInfo launch, bool cudaAvailable)
        => ((launch.JoinsThroughMpi && (launch.LooksMultiProcess || launch.Launcher == MaeLauncher.Mpi))
            || (launch.Launcher == MaeLauncher.Environment && launch.WorldSize > 1))
           && (device == MaeDevice.Cuda || (device == MaeDevice.Auto && cudaAvailable));

    /// <summary>The training device of this rank: <paramref name="device"/> resolved, on CUDA the rank's own GPU
    /// (<see cref="MaeLaunchInfo.CudaDevice"/>; the NCCL communicator's device when there is one).</summary>
    internal static Device TrainingDevice(MaeDevice device, IMaeCollective? collective)
    {
        bool onCuda = device == MaeDevice.Cuda || (device == MaeDevice.Auto && TorchRuntime.CudaAvailable);
        if (collective is null || !onCuda) return device.Resolve();
        int index = collective is MaeNcclCollective nccl ? nccl.Device : MaeLaunchInfo.CudaDevice(collective.LocalRank, TorchRuntime.CudaDeviceCount);
        return device.Resolve(index);
    }

    internal static IMaeCollective FromLaunch(MaeLaunchInfo launch, bool useNcclOnCuda, Func<string, string?>? variable = null)
    {
        if (launch.Launcher == MaeLauncher.Environment && launch.WorldSize > 1)
        {
            if (!useNcclOnCuda)
                throw new MaeCollectiveException(
                    $"WORLD_SIZE is {launch.WorldSize} (RANK {launch.Rank}) but this process was not started by an MPI launcher: a torchrun-style launch " +
                    "(MASTER_ADDR/MASTER_PORT) bootstraps NCCL, i.e. CUDA training only; CPU ranks communicate through Open MPI, which joins only " +
                    "the processes its own launcher started. For CPU training start the job with `mpirun -np N dotnet app.dll` (Open MPI), or " +
                    "under Slurm with `srun --mpi=pmix -n N dotnet app.dll`; each sets every rank itself.");
            var nccl = MaeNcclCollective.CreateFromEnvironment(launch, variable ?? System.Environment.GetEnvironmentVariable);
            joined = nccl;
            return nccl;
        }
        // Open MPI's own launcher always forms its world (even -np 1); other launchers with one task need no MPI.
        if (!launch.JoinsThroughMpi || (launch.Launcher != MaeLauncher.Mpi && !launch.LooksMultiProcess)) return Single;
        MaeMpiCollective world;
        try { world = MaeMpiCollective.World; }
        catch (MaeCollectiveException e) when (launch.LooksMultiProcess)
        {
            throw new MaeCollectiveException(
                $"The launcher ({launch.Launcher}) started this process as rank {launch.Rank} of a multi-process job, but MPI could not be set up: {e.Message}", e);
        }
        launch.CheckFormed(world.Rank, world.WorldSize);
        IMaeCollective formed = useNcclOnCuda ? MaeNcclCollective.Create(world) : world;
        joined = formed;
        return formed;
    }

    sealed class SingleProcessCollective : IMaeCollective
    {
        public int Rank => 0;
        public int WorldSize => 1;
        public int LocalRank => 0;
        public string Name => "single process";
        public void AllReduceMean(Tensor tensor) => MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: true);
        public void Broadcast(Tensor tensor, int root = 0)
        {
            MaeCollectiveChecks.Contiguous(tensor, nameof(tensor), requireFloat: false);
            if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "A single process has only rank 0.");
        }
        public void Barrier() { }
        public void Abort(string message) { }   // no other rank: the caller's exception is the report
    }
}

/// <summary>A collective operation failed, timed out, or the job is not set up for one; the message says which
/// rank, which operation and what to do.</summary>
public sealed class MaeCollectiveException : Exception
{
    public MaeCollectiveException(string message, Exception? inner = null) : base(message, inner) { }
}

static class MaeCollectiveChecks
{
    public static void Contiguous(Tensor tensor, string name, bool requireFloat)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (!tensor.is_contiguous())
            throw new ArgumentException($"The collective needs a contiguous tensor; got one of shape [{string.Join(", ", tensor.shape)}] that is not.", name);
        if (requireFloat && tensor.dtype != ScalarType.Float32)
            throw new ArgumentException($"The all-reduce works on float32 tensors (the flat gradient buffer); got {tensor.dtype}.", name);
    }
}
