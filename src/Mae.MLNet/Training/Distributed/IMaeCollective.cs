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
}

/// <summary>Finding and creating the job's collective.</summary>
public static class MaeCollective
{
    /// <summary>One process, world size 1: every operation returns at once.</summary>
    public static IMaeCollective Single { get; } = new SingleProcessCollective();

    /// <summary>
    /// The collective of the job this process was started in: under <c>mpirun</c> (Open MPI's
    /// <c>OMPI_COMM_WORLD_SIZE</c> is set) the MPI collective, on CUDA with <paramref name="useNcclOnCuda"/> the NCCL
    /// one bootstrapped over MPI; without a launcher and without <c>WORLD_SIZE</c> &gt; 1, <see cref="Single"/>.
    /// The torchrun-style variables (<c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>) describe a job but carry no
    /// transport: with <c>WORLD_SIZE</c> &gt; 1 and no MPI launcher this throws, naming mpirun.
    /// </summary>
    public static IMaeCollective FromEnvironment(bool useNcclOnCuda = false)
    {
        var launch = MaeLaunchInfo.Detect();
        if (launch.Launcher == MaeLauncher.Mpi)
            return useNcclOnCuda ? MaeNcclCollective.Create(MaeMpiCollective.World) : MaeMpiCollective.World;
        if (launch.WorldSize > 1)
            throw new MaeCollectiveException(
                $"WORLD_SIZE is {launch.WorldSize} (RANK {launch.Rank}) but this process was not started by mpirun: Mae.MLNet's ranks " +
                "communicate through MPI. Start the job with `mpirun -np N dotnet app.dll` (Open MPI; on a cluster through its " +
                "scheduler, e.g. `srun --mpi=pmix`), which sets each rank itself.");
        return Single;
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
