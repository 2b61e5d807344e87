namespace Mae.MLNet.Training;

/// <summary>A run's output folder that cannot be used as asked, and why (<see cref="Reason"/>): another run holds it
/// (<see cref="MaeRunFolderLock"/>), or a run that must resume found no checkpoint in it. Raised before any training step,
/// so the folder is left as it was.</summary>
public sealed class MaeRunFolderException : IOException
{
    /// <summary>Why the folder was refused.</summary>
    public enum Problem
    {
        /// <summary>Another run (another process, or another thread of this one) holds the folder's lock: two runs
        /// cannot write one folder.</summary>
        InUse,
        /// <summary>Resume was required (<see cref="MaeTrainingOptions.RequireResume"/>, the tool's
        /// <c>--resume=require</c>) but the folder holds no checkpoint of this task: a requeued job that landed in the
        /// wrong folder, or whose checkpoints were removed, stops instead of silently starting over.</summary>
        NothingToResume,
    }

    MaeRunFolderException(Problem reason, string folder, int? holderProcessId, string message, Exception? inner) : base(message, inner)
    {
        Reason = reason;
        Folder = folder;
        HolderProcessId = holderProcessId;
    }

    /// <summary>A folder whose run must resume but holds no checkpoint of this task (<see cref="Problem.NothingToResume"/>).</summary>
    public static MaeRunFolderException NothingToResume(string folder) => new(Problem.NothingToResume, folder, null,
        $"nothing to resume: '{folder}' holds no checkpoint of this task (resume was required; without that requirement the run would start from the first epoch).", null);

    /// <summary>A folder locked by another run (<see cref="Problem.InUse"/>); the message names the holder.</summary>
    internal static MaeRunFolderException InUse(string folder, int? holderProcessId, string message, Exception? inner = null)
        => new(Problem.InUse, folder, holderProcessId, message, inner);

    /// <summary>Why the folder was refused.</summary>
    public Problem Reason { get; }
    /// <summary>The folder (made absolute for <see cref="Problem.InUse"/>; as given for <see cref="Problem.NothingToResume"/>).</summary>
    public string Folder { get; }
    /// <summary>The process id written by the run holding the folder, when it could be read (<see cref="Problem.InUse"/>).</summary>
    public int? HolderProcessId { get; }
}
