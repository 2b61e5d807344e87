using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using Mae.MLNet.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Pretraining;

/// <summary>A pre-training checkpoint's header: the run's position and model config, and its options.</summary>
internal sealed record MaePretrainCheckpointHeader : MaeTrainingCheckpointHeader
{
    public MaePretrainOptions Options { get; init; } = new();
}

/// <summary>
/// Pre-training checkpoints (<see cref="MaeTrainingCheckpoint"/>'s layout in a <c>MAECKPT1</c> container): header,
/// model state, AdamW state, libtorch's CPU generator state, the loss history. A truncated or altered file is
/// detected before anything is loaded; a crash while writing leaves the previous checkpoint intact.
/// </summary>
public static class MaePretrainCheckpoint
{
    /// <summary>2: the optimizer state is the flat AdamW's (format 1, TorchSharp's per-parameter AdamW, still reads).</summary>
    internal const int FormatVersion = MaeTrainingCheckpoint.FormatVersion;
    public const string FilePrefix = "checkpoint-";
    public const string FileExtension = ".maeckpt";

    /// <summary>The file name for the checkpoint written after <paramref name="epochsCompleted"/> epochs.</summary>
    internal static string PathFor(string directory, int epochsCompleted) => Container.PathFor(directory, epochsCompleted);

    /// <summary>The checkpoint with the most completed epochs in <paramref name="directory"/>, or null if none.</summary>
    public static string? FindLatest(string directory) => Container.FindLatest(directory);

    internal static readonly CheckpointFile Container = new("MAECKPT1", FilePrefix, FileExtension, classifier: false);

    internal static readonly MaeTrainingCheckpoint Training =
        new(Container, json => JsonSerializer.Deserialize<MaePretrainCheckpointHeader>(json, MaeTrainingCheckpoint.Json));

    /// <summary>Reads and verifies a checkpoint's header (the whole file's checksum is checked first).</summary>
    internal static MaePretrainCheckpointHeader ReadHeader(string path)
    {
        using var r = Training.Open(path);
        return (MaePretrainCheckpointHeader)r.Header;
    }

    /// <summary>Builds whichever model the checkpoint holds (on the CPU) with its trained weights: a
    /// <see cref="MaskedAutoencoder"/> (ViT MAE) or an <see cref="Fcmae"/> (ConvNeXt V2). The file is verified and read
    /// once, so a caller that serves both kinds does not read it twice to learn which it holds.</summary>
    public static nn.Module Load(string path)
    {
        using var r = Training.Open(path);
        return Build(r);
    }

    /// <summary>Builds the ViT MAE the checkpoint holds (on the CPU) with its trained weights.</summary>
    public static MaskedAutoencoder LoadModel(string path)
    {
        using var r = Training.Open(path);
        if (r.Header.ConvNextConfig is not null)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' holds an FCMAE (ConvNeXt V2 {r.Header.ConvNextConfig}), not a ViT MAE; load it with LoadFcmae.");
        return (MaskedAutoencoder)Build(r);
    }

    /// <summary>Builds the FCMAE (ConvNeXt V2) an FCMAE pre-training checkpoint holds (on the CPU) with its trained
    /// weights; <see cref="Fcmae.ToEncoder"/> makes the featurizer.</summary>
    public static Fcmae LoadFcmae(string path)
    {
        using var r = Training.Open(path);
        if (r.Header.ConvNextConfig is null)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' holds a ViT MAE ({r.Header.Config}), not an FCMAE; load it with LoadModel.");
        return (Fcmae)Build(r);
    }

    static nn.Module Build(MaeTrainingCheckpointReader r)
    {
        nn.Module model = r.Header.ConvNextConfig is { } config ? new Fcmae(config.Validate()) : new MaskedAutoencoder(r.Header.Config);
        try { r.LoadModel(model); }
        catch { model.Dispose(); throw; }
        return model;
    }
}
