using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>The engine's data-parallel checks that involve all ranks.</summary>
internal static class MaeDataParallel
{
    /// <summary>Every rank must resume from the checkpoint rank 0 found (a folder not shared between machines, or
    /// one written to in between, would silently split the ranks).</summary>
    public static void CheckSameResume(IMaeCollective collective, string? found, string dir)
    {
        if (collective.WorldSize == 1) return;
        string mine = found is null ? "" : Path.GetFileName(found);
        using var lead = tensor(new long[] { Fnv1a(mine) });
        collective.Broadcast(lead, 0);
        if (lead.data<long>()[0] != Fnv1a(mine))
            throw new InvalidOperationException(
                $"Rank {collective.Rank} found {(found is null ? "no checkpoint" : $"'{mine}'")} in '{dir}' to resume from, but rank 0 found another: " +
                "CheckpointDir must be one folder every rank sees (a shared file system), unchanged while the job starts.");
    }

    static long Fnv1a(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in text) h = (h ^ c) * 1099511628211UL;
        return (long)h;
    }
}
