using System.Globalization;

namespace Mae.MLNet.Training;

/// <summary>Who started this process.</summary>
internal enum MaeLauncher
{
    /// <summary>No launcher variables: a plain single process.</summary>
    None,
    /// <summary>Open MPI's <c>mpirun</c> (<c>OMPI_COMM_WORLD_*</c>).</summary>
    Mpi,
    /// <summary>torchrun-style <c>RANK</c> / <c>WORLD_SIZE</c> / <c>LOCAL_RANK</c> only.</summary>
    Environment,
}

/// <summary>Rank, world size and local rank as the launcher's environment variables give them, before any
/// communication library is loaded.</summary>
internal sealed record MaeLaunchInfo(MaeLauncher Launcher, int Rank, int WorldSize, int LocalRank)
{
    /// <summary>Reads Open MPI's <c>OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK</c>, else <c>RANK</c>, <c>WORLD_SIZE</c>,
    /// <c>LOCAL_RANK</c>; a malformed value throws naming the variable.</summary>
    public static MaeLaunchInfo Detect()
    {
        if (Read("OMPI_COMM_WORLD_SIZE") is int mpiSize)
            return Checked(new(MaeLauncher.Mpi, Read("OMPI_COMM_WORLD_RANK") ?? 0, mpiSize, Read("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0));
        if (Read("WORLD_SIZE") is int size)
            return Checked(new(MaeLauncher.Environment, Read("RANK") ?? 0, size, Read("LOCAL_RANK") ?? 0));
        return new(MaeLauncher.None, 0, 1, 0);
    }

    static MaeLaunchInfo Checked(MaeLaunchInfo info)
    {
        if (info.WorldSize < 1 || info.Rank < 0 || info.Rank >= info.WorldSize || info.LocalRank < 0)
            throw new MaeCollectiveException($"The launcher's variables do not fit together: rank {info.Rank}, world size {info.WorldSize}, local rank {info.LocalRank} ({info.Launcher}).");
        return info;
    }

    static int? Read(string name)
    {
        var text = System.Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(text)) return null;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            throw new MaeCollectiveException($"The environment variable {name} is '{text}'; expected an integer.");
        return value;
    }
}
