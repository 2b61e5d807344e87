using System.Text.RegularExpressions;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Interop;
using Mae.MLNet.Pretraining;

namespace Mae.Cli;

/// <summary>The files a command reads and writes: checked before any work starts, written atomically, never over an
/// input image.</summary>
internal static class CliFiles
{
    /// <summary>A file the command will write: the extension it needs, not a folder, not one of the input images
    /// (<paramref name="inputs"/>); its folder is created.</summary>
    public static string OutputFile(FileInfo file, string flag, IReadOnlyCollection<string>? inputs, params string[] extensions)
    {
        if (extensions.Length > 0 && !extensions.Contains(file.Extension.ToLowerInvariant()))
            throw new CliException($"{flag}: expected a file ending in {string.Join(" or ", extensions)}; got '{file.Name}'.");
        if (Directory.Exists(file.FullName)) throw new CliException($"{flag}: '{file.FullName}' is a folder; expected a file name.");
        if (inputs is not null && inputs.Contains(file.FullName, PathComparer))
            throw new CliException($"{flag}: '{file.FullName}' is one of the input images; writing it would destroy it. Choose another name.");
        Directory.CreateDirectory(file.DirectoryName ?? ".");
        return file.FullName;
    }

    /// <summary>An output folder of a training run: not the image folder, nor inside it (its pictures would become
    /// training images of the next run), nor a file.</summary>
    public static string OutputFolder(DirectoryInfo folder, string flag, string images)
    {
        string full = Path.TrimEndingDirectorySeparator(folder.FullName), input = Path.TrimEndingDirectorySeparator(Path.GetFullPath(images));
        if (PathComparer.Equals(full, input))
            throw new CliException($"{flag}: '{full}' is the --images folder; the run's checkpoints and pictures need a folder of their own.");
        if (IsInside(full, input))
            throw new CliException($"{flag}: '{full}' is inside the --images folder '{input}'; its pictures would be read as training images. Choose a folder outside it.");
        if (File.Exists(full)) throw new CliException($"{flag}: '{full}' is a file; expected a folder.");
        Directory.CreateDirectory(full);
        return full;
    }

    public static string InputFile(FileInfo file, string flag)
    {
        if (!file.Exists && !Directory.Exists(file.FullName))
            throw new CliException($"{flag}: '{file.FullName}' does not exist.");
        return file.FullName;
    }

    static bool IsInside(string path, string folder)
        => path.StartsWith(folder + Path.DirectorySeparatorChar, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    static StringComparer PathComparer => OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    /// <summary>Writes <paramref name="target"/> through a temporary file beside it, renamed when complete: a failure
    /// or a stop leaves no half-written file.</summary>
    public static void WriteAtomically(string target, Action<string> write)
    {
        string temporary = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid():N}");
        // Whether the folder takes a new file is asked first, so that a refusal reads as one (exit 4), not as a missing input.
        try { File.Create(temporary).Dispose(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot write '{target}': {CliFlags.OneLine(e)}", e);
        }
        try
        {
            write(temporary);
            File.Move(temporary, target, overwrite: true);
        }
        finally { if (File.Exists(temporary)) File.Delete(temporary); }
    }
}

/// <summary><c>--weights</c>: a weights file as the library reads it, or a training checkpoint of this tool
/// (<c>.maeckpt</c> from pretrain, <c>.maeft</c> from finetune) exported to a temporary safetensors file that is
/// deleted when the command ends.</summary>
internal sealed class CliWeights : IDisposable
{
    readonly string? temporaryFolder;
    public string Path { get; }

    CliWeights(string path, string? temporaryFolder) => (Path, this.temporaryFolder) = (path, temporaryFolder);

    public static CliWeights Resolve(FileInfo file, string flag = "--weights")
    {
        string path = CliFiles.InputFile(file, flag);
        return IsCheckpoint(path) ? Temporary(target => Export(path, target)) : new CliWeights(path, null);
    }

    /// <summary>A ViT MAE already built from a checkpoint, as a temporary weights file (the checkpoint is not read again).</summary>
    public static CliWeights Of(MaskedAutoencoder mae) => Temporary(target => MaeWeightFile.Save(mae, target));

    static CliWeights Temporary(Action<string> write)
    {
        string folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mae-weights-{Guid.NewGuid():N}");
        string target = System.IO.Path.Combine(folder, "mae.safetensors");
        try { write(target); }
        catch { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); throw; }
        return new CliWeights(target, folder);
    }

    public static bool IsCheckpoint(string path)
        => path.EndsWith(MaePretrainCheckpoint.FileExtension, StringComparison.OrdinalIgnoreCase)
        || path.EndsWith(MaeFineTuneCheckpoint.FileExtension, StringComparison.OrdinalIgnoreCase);

    /// <summary>The model of a checkpoint (after its last completed step) as a weights file: a ViT's + its config JSON, or
    /// a ConvNeXt V2's under timm's names (an FCMAE checkpoint's encoder, a ConvNeXt fine-tuning checkpoint's classifier).
    /// Returns whether it was a ConvNeXt V2.</summary>
    public static bool Export(string checkpoint, string target)
    {
        bool fineTune = checkpoint.EndsWith(MaeFineTuneCheckpoint.FileExtension, StringComparison.OrdinalIgnoreCase);
        using var model = fineTune ? MaeFineTuneCheckpoint.Load(checkpoint) : MaePretrainCheckpoint.Load(checkpoint);
        switch (model)
        {
            case ConvNextV2 convNext: MaeWeightFile.SaveConvNextV2(convNext, target); return true;   // timm's names
            case Fcmae fcmae:
                using (var encoder = fcmae.ToEncoder()) MaeWeightFile.SaveConvNextV2(encoder, target);   // as `mae pretrain` writes it
                return true;
            case VitClassifier classifier: MaeWeightFile.Save(classifier, target); return false;
            case MaskedAutoencoder mae: MaeWeightFile.Save(mae, target); return false;
            default: throw new InvalidOperationException($"'{checkpoint}' built a {model.GetType().Name}, which has no weights file.");
        }
    }

    public void Dispose()
    {
        if (temporaryFolder is not null && Directory.Exists(temporaryFolder)) Directory.Delete(temporaryFolder, recursive: true);
    }
}

/// <summary>The checkpoints of a run folder: what a resume would read, and what may go once a newer one exists.</summary>
internal static class CliCheckpoints
{
    // PathFor's names: prefix + epochs completed (4 digits) [+ "-" + steps into the next epoch (6 digits)] + extension.
    static Regex Names(string prefix, string extension) => new($"^{Regex.Escape(prefix)}(\\d+)(?:-(\\d+))?{Regex.Escape(extension)}$");

    /// <summary>Deletes the position files of stopped runs (<c>…-NNNN-SSSSSS</c>) older than the latest checkpoint of a
    /// completed epoch, and with <paramref name="keepEpochs"/> every completed-epoch file but the latest and those listed
    /// (the best epoch's). The latest file is never touched, so a stop at any moment still resumes.</summary>
    public static IReadOnlyList<string> Prune(string folder, string prefix, string extension, Func<string, string?> findLatest, ISet<int>? keepEpochs)
    {
        var deleted = new List<string>();
        if (!Directory.Exists(folder) || findLatest(folder) is not { } latest) return deleted;
        var names = Names(prefix, extension);
        var files = Directory.GetFiles(folder).Select(f => (Path: f, Match: names.Match(Path.GetFileName(f)))).Where(f => f.Match.Success)
            .Select(f => (f.Path, Epochs: int.Parse(f.Match.Groups[1].Value), Mid: f.Match.Groups[2].Success)).ToList();
        int newestComplete = files.Where(f => !f.Mid).Select(f => f.Epochs).DefaultIfEmpty(-1).Max();
        foreach (var f in files)
        {
            if (string.Equals(f.Path, latest, StringComparison.Ordinal)) continue;
            bool staleMid = f.Mid && f.Epochs < newestComplete;
            bool oldComplete = keepEpochs is not null && !f.Mid && f.Epochs < newestComplete && !keepEpochs.Contains(f.Epochs);
            if (!staleMid && !oldComplete) continue;
            File.Delete(f.Path);
            deleted.Add(f.Path);
        }
        return deleted;
    }

    /// <summary>What <c>--resume</c> will do, said before any work: the checkpoint it continues from, or that there is none
    /// (the run starts at epoch 1).</summary>
    public static string ResumeLine(string folder, string? latest)
        => latest is null ? $"resume: no checkpoint in '{folder}' yet; starting from the first epoch" : $"resume: continuing from '{latest}'";
}
