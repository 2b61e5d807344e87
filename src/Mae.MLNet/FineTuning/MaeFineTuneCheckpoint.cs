using System.Text;
using System.Text.Json;
using Mae.MLNet.Model;
using Mae.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>What a fine-tuning checkpoint says about the run that wrote it (JSON at its start).</summary>
public sealed record MaeFineTuneCheckpointHeader
{
    public int FormatVersion { get; init; } = MaeFineTuneCheckpoint.FormatVersion;
    public int EpochsCompleted { get; init; }
    public long GlobalStep { get; init; }
    public long OptimizerSteps { get; init; }
    public long StepsPerEpoch { get; init; }
    public MaeConfig Config { get; init; } = new();
    public int NumClasses { get; init; }
    public bool GlobalPool { get; init; }
    public MaeFineTuneOptions Options { get; init; } = new();
    public int? BestEpoch { get; init; }
    public double? BestValidationAccuracy { get; init; }
    public DateTime SavedUtc { get; init; }
}

/// <summary>
/// Fine-tuning checkpoints in the same container as the pre-training ones (<see cref="CheckpointFile"/>: magic
/// <c>MAEFTCK1</c>, SHA-256 trailer, atomic rename): header, model, AdamW state, generator state, loss and
/// validation history, and the best epoch's weights so a resumed run keeps them.
/// </summary>
public static class MaeFineTuneCheckpoint
{
    public const int FormatVersion = 1;
    public const string FilePrefix = "finetune-";
    public const string FileExtension = ".maeft";
    internal static readonly CheckpointFile Container = new("MAEFTCK1", FilePrefix, FileExtension);

    public static string PathFor(string directory, int epochsCompleted) => Container.PathFor(directory, epochsCompleted);
    public static string? FindLatest(string directory) => Container.FindLatest(directory);

    public static MaeFineTuneCheckpointHeader ReadHeader(string path)
    {
        using var r = Reader.Open(path);
        return r.Header;
    }

    /// <summary>Builds the classifier the checkpoint holds (on the CPU) with its weights after the last epoch.</summary>
    public static VitClassifier LoadModel(string path)
    {
        using var r = Reader.Open(path);
        var model = new VitClassifier(r.Header.Config, r.Header.NumClasses, r.Header.GlobalPool);
        r.LoadModel(model);
        return model;
    }

    internal sealed record History(List<float> StepLosses, List<double> EpochLosses, List<double> ValidationAccuracies, List<double> ValidationLosses);

    internal static void Save(string path, MaeFineTuneCheckpointHeader header, VitClassifier model, optim.Optimizer optimizer,
        History history, IReadOnlyDictionary<string, Tensor>? bestWeights)
        => Container.Save(path, w =>
        {
            w.Write(JsonSerializer.Serialize(header, MaePretrainCheckpoint.Json));
            CheckpointFile.WriteTrainingState(w, model, optimizer);
            w.Write(history.StepLosses.Count);
            foreach (var l in history.StepLosses) w.Write(l);
            foreach (var list in new[] { history.EpochLosses, history.ValidationAccuracies, history.ValidationLosses })
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
        });

    internal sealed class Reader : IDisposable
    {
        readonly FileStream fs;
        readonly BinaryReader r;
        readonly string path;
        public MaeFineTuneCheckpointHeader Header { get; }

        Reader(string path, FileStream fs)
        {
            this.path = path; this.fs = fs;
            r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
            try
            {
                Header = JsonSerializer.Deserialize<MaeFineTuneCheckpointHeader>(r.ReadString(), MaePretrainCheckpoint.Json)
                    ?? throw CheckpointFile.Corrupt(path, "its header is empty");
            }
            catch (JsonException e) { throw CheckpointFile.Corrupt(path, "its header is not valid JSON", e); }
            if (Header.FormatVersion != FormatVersion)
                throw new InvalidDataException($"Checkpoint '{path}' has format version {Header.FormatVersion}; this build reads version {FormatVersion}.");
        }

        public static Reader Open(string path)
        {
            var fs = Container.OpenPayload(path);
            try { return new Reader(path, fs); }
            catch { fs.Dispose(); throw; }
        }

        public void LoadModel(nn.Module model) => CheckpointFile.LoadModel(r, path, model);
        public void LoadOptimizer(optim.Optimizer optimizer) => CheckpointFile.LoadOptimizer(r, path, optimizer);
        public Tensor ReadRngState() => CheckpointFile.ReadRngState(r);

        public History ReadHistory()
        {
            int n = r.ReadInt32();
            var steps = new List<float>(n);
            for (int i = 0; i < n; i++) steps.Add(r.ReadSingle());
            var lists = new List<double>[3];
            for (int k = 0; k < 3; k++)
            {
                int m = r.ReadInt32();
                lists[k] = new List<double>(m);
                for (int i = 0; i < m; i++) lists[k].Add(r.ReadDouble());
            }
            return new History(steps, lists[0], lists[1], lists[2]);
        }

        /// <summary>The best epoch's weights by name (CPU tensors owned by the caller), or null if none were saved.</summary>
        public Dictionary<string, Tensor>? ReadBestWeights()
        {
            int n = r.ReadInt32();
            if (n == 0) return null;
            var d = new Dictionary<string, Tensor>(n, StringComparer.Ordinal);
            for (int i = 0; i < n; i++)
            {
                var name = r.ReadString();
                var t = TensorExtensionMethods.Load(r);
                t.DetachFromDisposeScope();
                d[name] = t;
            }
            return d;
        }

        public void Dispose()
        {
            r.Dispose();
            fs.Dispose();
        }
    }
}
