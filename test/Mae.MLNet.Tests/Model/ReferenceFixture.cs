using System.Text.Json;
using Mae.MLNet.Model;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>
/// One fixture written by Fixtures/make_reference_fixtures.py from the official facebookresearch/mae code
/// (timm 0.3.2 Block, Debian python3-torch 1.13): weights, inputs, the reference's outputs and gradients.
/// Also compiled into samples/Benchmarks (the GPU check reads the same fixtures), so it uses no test framework.
/// </summary>
internal sealed class ReferenceFixture : IDisposable
{
    public Dictionary<string, Tensor> Tensors { get; }
    public Dictionary<string, string> Metadata { get; }
    public MaeConfig Config { get; }
    public double MaskRatio => double.Parse(Metadata["mask_ratio"], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Fixture <c>mae_ref_{name}.safetensors</c> from <paramref name="folder"/> (default: the test output's Fixtures/).</summary>
    public ReferenceFixture(string name, string? folder = null)
    {
        string path = Path.Combine(folder ?? Path.Combine(AppContext.BaseDirectory, "Fixtures"), $"mae_ref_{name}.safetensors");
        Tensors = Safetensors.LoadStateDict(path);
        Metadata = ReadMetadata(path);
        int I(string key) => int.Parse(Metadata[key]);
        Config = new MaeConfig
        {
            ImageSize = I("img_size"), PatchSize = I("patch_size"), InChannels = I("in_chans"),
            EmbedDim = I("embed_dim"), Depth = I("depth"), NumHeads = I("num_heads"),
            DecoderEmbedDim = I("decoder_embed_dim"), DecoderDepth = I("decoder_depth"),
            DecoderNumHeads = I("decoder_num_heads"),
            MlpRatio = double.Parse(Metadata["mlp_ratio"], System.Globalization.CultureInfo.InvariantCulture),
            NormPixLoss = Metadata["norm_pix_loss"] == "true",
            LayerNormEps = double.Parse(Metadata["layer_norm_eps"], System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    public Tensor this[string name] => Tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"fixture has no tensor '{name}'");
    public bool HasGrads => Metadata["has_grads"] == "true";

    /// <summary>Builds our model and copies the reference weights in by official name (every name must match).</summary>
    public MaskedAutoencoder BuildModel()
    {
        var model = new MaskedAutoencoder(Config);
        var ours = model.state_dict();
        var theirs = Tensors.Where(kv => kv.Key.StartsWith("param.")).ToDictionary(kv => kv.Key["param.".Length..], kv => kv.Value);
        if (!theirs.Keys.ToHashSet().SetEquals(ours.Keys))
            throw new InvalidOperationException("parameter names differ from the official model: " +
                string.Join(", ", theirs.Keys.Except(ours.Keys).Concat(ours.Keys.Except(theirs.Keys))));
        using (no_grad())
            foreach (var (key, value) in theirs)
            {
                if (key.EndsWith("pos_embed")) continue; // ours are computed; a test compares them separately
                if (!value.shape.SequenceEqual(ours[key].shape))
                    throw new InvalidOperationException($"{key}: official shape [{string.Join(", ", value.shape)}], ours [{string.Join(", ", ours[key].shape)}]");
                ours[key].copy_(value);
            }
        return model;
    }

    static Dictionary<string, string> ReadMetadata(string path)
    {
        using var stream = File.OpenRead(path);
        var lengthBytes = new byte[8];
        stream.ReadExactly(lengthBytes);
        var header = new byte[BitConverter.ToUInt64(lengthBytes)];
        stream.ReadExactly(header);
        using var doc = JsonDocument.Parse(header);
        return doc.RootElement.GetProperty("__metadata__").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}
