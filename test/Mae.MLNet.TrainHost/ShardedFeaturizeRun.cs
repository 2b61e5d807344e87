using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Training;

namespace Mae.MLNet.TrainHost;

/// <summary>
/// <c>[mpirun -np N] Mae.MLNet.TrainHost featurize FOLDER ROWS</c>: every rank featurizes its block of ROWS synthetic
/// images with the tiny encoder (seeded, so every rank holds the same weights) into FOLDER through
/// <c>mlContext.Data.SaveShard</c>; then rank 0 reads the parts back with <c>LoadShards</c> and
/// writes FOLDER/all.txt (one line per row: name and features as float bits). With one process it writes the same
/// file from featurizing all rows at once (FOLDER/direct.txt).
/// </summary>
public static class ShardedFeaturizeRun
{
    public sealed class Row
    {
        public string Name { get; set; } = "";
        [VectorType(3 * 16 * 16)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    public sealed class Output
    {
        public string Name { get; set; } = "";
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    public static int Run(string[] args)
    {
        string folder = args[0];
        int rows = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        var collective = MaeCollective.FromEnvironment();
        var ml = new MLContext(seed: 1);
        TorchRuntime.Seed(5);
        using var encoder = new MaeEncoder(TinyRun.Config);
        var images = TinyRun.Images(rows);
        var data = ml.Data.LoadFromEnumerable(images.Select((p, i) => new Row { Name = $"img{i}", Pixels = p }));
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, batchSize: 4, device: MaeDevice.Cpu).Fit(data);
        Directory.CreateDirectory(folder);
        IDataView result;
        string file;
        if (args.Length > 2 && args[2] == "direct")
        {
            result = model.Transform(data);
            file = "direct.txt";
        }
        else
        {
            ml.Data.SaveShard(model, data, folder, collective, "Name", "Features");
            if (collective.Rank != 0) return 0;
            result = ml.Data.LoadShards(folder);
            file = "all.txt";
        }
        var lines = ml.Data.CreateEnumerable<Output>(result, reuseRowObject: false)
            .Select(o => o.Name + " " + string.Join(",", o.Features.Select(f => BitConverter.SingleToInt32Bits(f).ToString("X8"))));
        File.WriteAllLines(Path.Combine(folder, file), lines);
        return 0;
    }
}
