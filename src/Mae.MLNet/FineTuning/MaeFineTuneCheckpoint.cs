using System.Text;
using System.Text.Json;
using Mae.MLNet.Model;
using Mae.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>A fine-tuning checkpoint's header: the run's position and model config, the classifier's shape, its
/// options and the best validation epoch so far.</summary>
internal sealed record MaeFineTuneCheckpointHeader : MaeTrainingCheckpointHeader
{
    public int NumClasses { get; init; }
    public bool GlobalPool { get; init; }
    public MaeFineTuneOptions Options { get; init; } = new();
    public int? BestEpoch { get; init; }
    public double? BestValidationAccuracy { get; init; }
}

/// <summary>
/// Fine-tuning checkpoints: <see cref="MaeTrainingCheckpoint"/>'s layout in a <c>MAEFTCK1</c> container (SHA-256
/// trailer, atomic rename) — header, model, AdamW state, generator state, loss history — followed by the validation
/// history and the best epoch's weights, so a resumed run keeps them.
/// </summary>
public static class MaeFineTuneCheckpoint
{
    /// <summary>2: the optimizer state is the flat AdamW's (format 1, TorchSharp's per-parameter AdamW, still reads).</summary>
    internal const int FormatVersion = MaeTrainingCheckpoint.FormatVersion;
    public const string FilePrefix = "finetune-";
    public const string FileExtension = ".maeft";
    internal static readonly CheckpointFile Container = new("MAEFTCK1", FilePrefix, FileExtension, classifier: true);
    internal static readonly MaeTrainingCheckpoint Training =
        new(Container, json => JsonSerializer.Deserialize<MaeFineTuneCheckpointHeader>(json, MaeTrainingCheckpoint.Json));

    internal static string PathFor(string directory, int epochsCompleted) => Container.PathFor(directory, epochsCompleted);
    public static string? FindLatest(string directory) => Container.FindLatest(directory);

    internal static MaeFineTuneCheckpointHeader ReadHeader(string path)
    {
        using var r = Training.Open(path);
        return (MaeFineTuneCheckpointHeader)r.Header;
    }

    /// <summary>Builds whichever classifier the checkpoint holds (on the CPU) with its weights after the last epoch: a
    /// <see cref="VitClassifier"/> or a <see cref="ConvNextV2"/>. The file is verified and read once, so a caller that
    /// serves both kinds does not read it twice to learn which it holds.</summary>
    public static nn.Module Load(string path)
    {
        using var r = Training.Open(path);
        return Build(r);
    }

    /// <summary>Builds the ViT classifier the checkpoint holds (on the CPU) with its weights after the last epoch.</summary>
    public static VitClassifier LoadModel(string path)
    {
        using var r = Training.Open(path);
        if (r.Header.ConvNextConfig is not null)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' holds a ConvNeXt V2 classifier ({r.Header.ConvNextConfig}), not a ViT; load it with LoadConvNextV2.");
        return (VitClassifier)Build(r);
    }

    /// <summary>Builds the ConvNeXt V2 classifier the checkpoint holds (on the CPU) with its weights after the last epoch.</summary>
    public static ConvNextV2 LoadConvNextV2(string path)
    {
        using var r = Training.Open(path);
        if (r.Header.ConvNextConfig is null)
            throw new MaeTrainingCheckpointException($"Checkpoint '{path}' holds a ViT classifier ({r.Header.Config}), not a ConvNeXt V2; load it with LoadModel.");
        return (ConvNextV2)Build(r);
    }

    static nn.Module Build(MaeTrainingCheckpointReader r)
    {
        var h = (MaeFineTuneCheckpointHeader)r.Header;
        nn.Module model = h.ConvNextConfig is { } config ? new ConvNextV2(config, h.NumClasses) : new VitClassifier(h.Config, h.NumClasses, h.GlobalPool);
        try { r.LoadModel(model); }
        catch { model.Dispose(); throw; }
        return model;
    }

    /// <summary>After the loss history: validation accuracies, validation losses, the best weights by name.</summary>
    internal static void WriteExtras(BinaryWriter w, IReadOnlyList<double> accuracies, IReadOnlyList<double> losses, IReadOnlyDictionary<string, Tensor>? bestWeights)
    {
        foreach (var list in new[] { accuracies, losses })
        {
            w.Write(list.Count);
            foreach (var v in list) w.Write(v);
        }
        w.Write(bestWeights?.Count ?? 0);
        if (bestWeights is not null)
            foreach (var (name, t) in bestWeights)
            {
                w.Write(name);
                t.Save(w);
            }
    }

    /// <summary>Reads <see cref="WriteExtras"/>' sections; the best weights (CPU tensors owned by the caller) or null.</summary>
    internal static (List<double> Accuracies, List<double> Losses, Dictionary<string, Tensor>? Best) ReadExtras(BinaryReader r)
    {
        var lists = new List<double>[2];
        for (int k = 0; k < 2; k++)
        {
            int m = CheckpointFile.ReadCount(r, sizeof(double), "the validation history");
            lists[k] = new List<double>(m);
            for (int i = 0; i < m; i++) lists[k].Add(r.ReadDouble());
        }
        int n = CheckpointFile.ReadCount(r, 1, "the best weights");
        if (n == 0) return (lists[0], lists[1], null);
        var d = new Dictionary<string, Tensor>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            var name = r.ReadString();
            var t = CheckpointFile.ReadTensor(r, $"the best weight '{name}'", long.MaxValue);   // bounded by the payload left
            t.DetachFromDisposeScope();
            d[name] = t;
        }
        return (lists[0], lists[1], d);
    }
}
