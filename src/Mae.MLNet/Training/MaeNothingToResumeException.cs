namespace Mae.MLNet.Training;

/// <summary>A run that must resume (<see cref="MaeTrainingOptions.RequireResume"/>, the tool's <c>--resume=require</c>)
/// found no checkpoint in its folder. Raised before any training step, so the folder is left as it was: a requeued job
/// that landed in the wrong folder, or whose checkpoints were removed, stops instead of silently starting over.</summary>
public sealed class MaeNothingToResumeException : IOException
{
    public MaeNothingToResumeException(string folder)
        : base($"nothing to resume: '{folder}' holds no checkpoint of this task (resume was required; without that requirement the run would start from the first epoch).")
        => Folder = folder;

    /// <summary>The checkpoint folder that was searched.</summary>
    public string Folder { get; }
}
