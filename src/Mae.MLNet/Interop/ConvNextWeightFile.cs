using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

public static partial class MaeWeightFile
{
    /// <summary>
    /// Loads a ConvNeXt V2 from a timm file (<c>convnextv2_*.fcmae</c> encoder-only, <c>*.fcmae_ft_*</c> fine-tuned;
    /// safetensors or PyTorch pickle), an official facebookresearch/ConvNeXt-V2 checkpoint (<c>{'model': …}</c>, names
    /// mapped as timm maps them; an FCMAE pre-training checkpoint's encoder), read by the same hardened readers as the
    /// MAE files. The architecture comes from <paramref name="config"/> or, without one, from the tensors' shapes
    /// (<see cref="ConvNextV2Config.ImageSize"/> 224); every tensor is checked against it.
    /// </summary>
    /// <param name="path">A .safetensors, .pth/.pt/.bin file, or a folder with model.safetensors / pytorch_model.bin.</param>
    /// <param name="config">The architecture, when known (say a preset at another image size); otherwise read from the shapes.</param>
    /// <param name="numClasses">Classes of the head: the file's by default (0, the encoder alone, when it has none); another
    /// count starts a fresh <c>head.fc</c>.</param>
    /// <param name="limits">What the file may make the loader read and build; <see cref="MaeLoadLimits.Default"/> if null.</param>
    /// <exception cref="MaeModelFileException">The file is corrupt, hostile, over a limit, not a ConvNeXt V2, or does not
    /// fit the config; the message names the file and lists every missing, unexpected or misshapen tensor.</exception>
    public static ConvNextV2 LoadConvNextV2(string path, ConvNextV2Config? config = null, int? numClasses = null, MaeLoadLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        Runtime.TorchBackend.EnsureAvailable();
        limits = (limits ?? MaeLoadLimits.Default).Validate();
        config?.Validate();
        if (numClasses is < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be ≥ 0 (0: no classifier).");
        var (file, _, _) = Locate(path);
        var contents = WeightFiles.Read(file, limits);
        Dictionary<string, Tensor>? sd = null;
        try
        {
            sd = ConvNextWeightNames.ToTimm(contents.Tensors, path);
            string prefix = sd.ContainsKey("stem.0.weight") || !sd.ContainsKey("encoder.stem.0.weight") ? "" : "encoder.";
            var shapes = sd.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
            var (inferred, fileClasses) = ConvNextWeightNames.Infer(shapes, path, prefix);
            var resolved = config ?? inferred.Validate();
            var floats = ToFloat32(sd, path);
            sd = floats;
            var model = new ConvNextV2(resolved, numClasses ?? fileClasses);
            try
            {
                using var scope = NewDisposeScope();
                var selection = ConvNextWeightNames.ForModel(model, floats, prefix);
                if (!selection.Fits)
                {
                    var lines = new List<string> { $"'{path}' does not fit the ConvNeXt V2 ({Summary(resolved)}, {model.NumClasses} classes):" };
                    if (selection.Missing.Count > 0) lines.Add($"  missing keys ({selection.Missing.Count}): {string.Join(", ", selection.Missing)}");
                    if (selection.Unexpected.Count > 0) lines.Add($"  unexpected keys ({selection.Unexpected.Count}): {string.Join(", ", selection.Unexpected)}");
                    if (selection.ShapeDifferences.Count > 0) lines.Add($"  shape differences ({selection.ShapeDifferences.Count}): {string.Join("; ", selection.ShapeDifferences)}");
                    throw new MaeModelFileException(string.Join(Environment.NewLine, lines), path, null);
                }
                var target = model.state_dict();
                using (no_grad())
                    foreach (var (key, value) in selection.Values) target[key].copy_(value);
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var t in contents.Tensors.Values) t.Dispose();
            if (sd is not null) foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>Whether a weights file (or Hugging Face-style folder) holds a ConvNeXt V2 (timm's or the official
    /// names, <see cref="LoadConvNextV2"/>) rather than an MAE ViT (<see cref="Read"/>): its names are read, no tensor.</summary>
    /// <exception cref="MaeModelFileException">The file is corrupt, hostile or over a limit.</exception>
    public static bool HoldsConvNextV2(string path, MaeLoadLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        limits = (limits ?? MaeLoadLimits.Default).Validate();
        var (file, _, _) = Locate(path);
        return ConvNextWeightNames.LooksLikeConvNext(WeightFiles.Describe(file, limits).Shapes.Keys);
    }

    /// <summary>Writes <paramref name="model"/>'s state dict as safetensors under timm's names (what
    /// <see cref="LoadConvNextV2"/> and timm read back), through a temporary file renamed into place.</summary>
    public static void SaveConvNextV2(ConvNextV2 model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        using var scope = NewDisposeScope();
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in model.state_dict()) sd[name] = tensor.detach().to(float32).cpu().contiguous();
        Runtime.AtomicFile.Write(full, stream => TorchSharp.PyBridge.Safetensors.SaveStateDict(stream, sd, leaveOpen: true));
    }

    static string Summary(ConvNextV2Config c)
        => $"{c.InChannels}ch, stem {c.StemPatchSize}, depths [{string.Join(", ", c.Depths)}], dims [{string.Join(", ", c.Dims)}], {(c.ConvMlp ? "1×1-conv" : "linear")} MLP ×{c.MlpRatio}";
}
