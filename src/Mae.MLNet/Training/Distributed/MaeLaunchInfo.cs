using System.Globalization;

namespace Mae.MLNet.Training;

/// <summary>Who started this process.</summary>
internal enum MaeLauncher
{
    /// <summary>No launcher variables: a plain single process.</summary>
    None,
    /// <summary>Open MPI's <c>mpirun</c> / <c>mpiexec</c> (<c>OMPI_COMM_WORLD_*</c>).</summary>
    Mpi,
    /// <summary>torchrun-style <c>RANK</c> / <c>WORLD_SIZE</c> / <c>LOCAL_RANK</c> only (torchrun, a hand-written script):
    /// they name a job but no transport Open MPI can join, so more than one rank is refused.</summary>
    Environment,
    /// <summary>Slurm's <c>srun</c> (a job step: <c>SLURM_STEP_NUM_TASKS</c>, <c>SLURM_PROCID</c>, <c>SLURM_LOCALID</c>);
    /// Open MPI joins the ranks through PMIx (<c>srun --mpi=pmix</c>).</summary>
    Slurm,
    /// <summary>A PMI-2 launcher (<c>PMI_RANK</c> / <c>PMI_SIZE</c>: <c>srun --mpi=pmi2</c>, Hydra).</summary>
    Pmi,
    /// <summary>A PMIx launcher that sets only <c>PMIX_RANK</c> (e.g. <c>prterun</c>): the world size comes from MPI.</summary>
    Pmix,
}

/// <summary>Rank, world size and local rank as the launcher's environment variables give them, before any
/// communication library is loaded. <see cref="WorldSize"/> is 0 when the launcher names no size (PMIx alone): MPI
/// then gives it. Once the collective is formed, its own rank and size are the job's (<see cref="MaeCollective.FromEnvironment(bool)"/>
/// checks they agree with these).</summary>
internal sealed record MaeLaunchInfo(MaeLauncher Launcher, int Rank, int WorldSize, int LocalRank)
{
    /// <summary>Whether the launcher starts ranks that join through MPI (mpirun, srun, PMI / PMIx).</summary>
    public bool JoinsThroughMpi => Launcher is MaeLauncher.Mpi or MaeLauncher.Slurm or MaeLauncher.Pmi or MaeLauncher.Pmix;

    /// <summary>Whether the variables say this process is one of several (world size &gt; 1, or a PMIx rank whose
    /// size MPI will tell).</summary>
    public bool LooksMultiProcess => WorldSize > 1 || (Launcher == MaeLauncher.Pmix && (WorldSize == 0 || Rank > 0));

    /// <summary>Reads this process's environment (see <see cref="Detect(Func{string, string?})"/>).</summary>
    public static MaeLaunchInfo Detect() => Detect(System.Environment.GetEnvironmentVariable);

    /// <summary>
    /// Reads the launcher variables through <paramref name="variable"/>, first match wins: Open MPI
    /// (<c>OMPI_COMM_WORLD_SIZE/RANK/LOCAL_RANK</c>), then a Slurm job step (<c>SLURM_STEP_NUM_TASKS</c>, <c>SLURM_PROCID</c>,
    /// <c>SLURM_LOCALID</c> — only <c>srun</c> sets the step's task count; a batch script's <c>SLURM_NTASKS</c> alone is one
    /// process), then PMI-2 (<c>PMI_SIZE</c>, <c>PMI_RANK</c>), then PMIx (<c>PMIX_RANK</c>), then torchrun-style
    /// <c>WORLD_SIZE</c>, <c>RANK</c>, <c>LOCAL_RANK</c>. The local rank falls back to <c>LOCAL_RANK</c>, then 0.
    /// A malformed or inconsistent value throws naming the variable.
    /// </summary>
    public static MaeLaunchInfo Detect(Func<string, string?> variable)
    {
        ArgumentNullException.ThrowIfNull(variable);
        int? Read(string name)
        {
            var text = variable(name);
            if (string.IsNullOrWhiteSpace(text)) return null;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
                throw new MaeCollectiveException($"The environment variable {name} is '{text}'; expected an integer.");
            return value;
        }
        int Local(string name) => Read(name) ?? Read("LOCAL_RANK") ?? 0;

        if (Read("OMPI_COMM_WORLD_SIZE") is int mpiSize)
            return Checked(new(MaeLauncher.Mpi, Read("OMPI_COMM_WORLD_RANK") ?? 0, mpiSize, Local("OMPI_COMM_WORLD_LOCAL_RANK")));
        if (Read("SLURM_STEP_NUM_TASKS") is int tasks)
            return Checked(new(MaeLauncher.Slurm, Read("SLURM_PROCID") ?? 0, tasks, Local("SLURM_LOCALID")));
        if (Read("PMI_SIZE") is int pmiSize)
            return Checked(new(MaeLauncher.Pmi, Read("PMI_RANK") ?? 0, pmiSize, Local("MPI_LOCALRANKID")));
        if (Read("PMIX_RANK") is int pmixRank)
            return Checked(new(MaeLauncher.Pmix, pmixRank, 0, Local("PMIX_LOCAL_RANK")));
        if (Read("WORLD_SIZE") is int size)
            return Checked(new(MaeLauncher.Environment, Read("RANK") ?? 0, size, Read("LOCAL_RANK") ?? 0));
        return new(MaeLauncher.None, 0, 1, 0);
    }

    static MaeLaunchInfo Checked(MaeLaunchInfo info)
    {
        bool sizeOk = info.Launcher == MaeLauncher.Pmix ? info.WorldSize == 0 : info.WorldSize >= 1 && info.Rank < info.WorldSize;
        if (!sizeOk || info.Rank < 0 || info.LocalRank < 0)
            throw new MaeCollectiveException($"The launcher's variables do not fit together: rank {info.Rank}, world size {info.WorldSize}, local rank {info.LocalRank} ({info.Launcher}).");
        return info;
    }

    /// <summary>
    /// Checks the collective MPI formed (<paramref name="mpiRank"/> of <paramref name="mpiSize"/>) against what the
    /// launcher announced: a launch that looks multi-process but gave a world of one (srun without <c>--mpi=pmix</c>, an
    /// Open MPI built without PMIx, a script that started the program N times) would otherwise train N times as
    /// "rank 0 of 1" and write the same checkpoint N times. Throws naming the launcher, the variables and what to use.
    /// </summary>
    public void CheckFormed(int mpiRank, int mpiSize)
    {
        bool sizeAgrees = WorldSize == 0 ? !(mpiSize == 1 && Rank > 0) : mpiSize == WorldSize;
        if (sizeAgrees && mpiRank == Rank) return;
        string announced = WorldSize == 0 ? $"rank {Rank}" : $"rank {Rank} of {WorldSize}";
        string hint = Launcher switch
        {
            MaeLauncher.Slurm => "Under Slurm start the ranks with `srun --mpi=pmix` and an Open MPI built with PMIx support (`srun --mpi=list` shows the plugins), or use mpirun inside the allocation.",
            MaeLauncher.Pmi => "The PMI-2 launcher's ranks did not join one MPI world: Mae.MLNet binds Open MPI (libmpi.so.40); start it with Open MPI's mpirun or `srun --mpi=pmix`.",
            _ => "Start every rank with the same launcher (Open MPI's mpirun, or `srun --mpi=pmix`) and the same Open MPI on every machine.",
        };
        throw new MaeCollectiveException(
            $"The launcher ({Launcher}) announced {announced}, but MPI formed rank {mpiRank} of {mpiSize}: this process cannot join its job, " +
            $"and running it alone would repeat the whole training once per process. {hint}");
    }

    /// <summary>
    /// The CUDA device of a rank with local rank <paramref name="localRank"/> that sees <paramref name="visibleDevices"/>
    /// GPUs (libtorch's count, after <c>CUDA_VISIBLE_DEVICES</c>): one GPU per rank. A rank that sees exactly one GPU
    /// (the launcher gave each rank its own: <c>srun --gpus-per-task=1</c>, or <c>CUDA_VISIBLE_DEVICES</c> set per
    /// rank) uses it; otherwise local rank r uses GPU r. More ranks on a machine than GPUs throws (NCCL refuses two
    /// ranks on one GPU).
    /// </summary>
    public static int CudaDevice(int localRank, int visibleDevices)
    {
        if (localRank < 0) throw new ArgumentOutOfRangeException(nameof(localRank), localRank, "The local rank must be ≥ 0.");
        if (visibleDevices <= 1) return 0;
        if (localRank < visibleDevices) return localRank;
        throw new MaeCollectiveException(
            $"Local rank {localRank} needs its own GPU, but this process sees {visibleDevices} (CUDA_VISIBLE_DEVICES='{System.Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")}'): " +
            $"start at most {visibleDevices} ranks per machine (e.g. mpirun --map-by ppr:{visibleDevices}:node, srun --ntasks-per-node={visibleDevices} --gpus-per-task=1).");
    }
}
