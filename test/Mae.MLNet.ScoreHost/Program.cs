// Mae.MLNet.ScoreHost <model.zip> <rows.f32> <rowLength> <out.txt> [vectorColumn]
// Loads the zip in a fresh process with a fresh MLContext, scores the rows (little-endian float32, rowLength per
// row) and writes one line per row: the predicted label's key index, then the values of vectorColumn (default
// "Features") in round-trip format.
// The last line says whether libtorch was ever loaded into this process (it must not be).
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

if (args.Length is not (4 or 5)) { Console.Error.WriteLine("usage: Mae.MLNet.ScoreHost <model.zip> <rows.f32> <rowLength> <out.txt> [vectorColumn]"); return 2; }
string vectorColumn = args.Length == 5 ? args[4] : "Features";
int length = int.Parse(args[2], CultureInfo.InvariantCulture);
var bytes = File.ReadAllBytes(args[1]);
var all = new float[bytes.Length / 4];
Buffer.BlockCopy(bytes, 0, all, 0, bytes.Length);
var rows = Enumerable.Range(0, all.Length / length).Select(i => new Row { Pixels = all.AsSpan(i * length, length).ToArray() }).ToList();

var ml = new MLContext(seed: 0);
var model = ml.Model.Load(args[0], out _);
var definition = SchemaDefinition.Create(typeof(Row));
definition["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, length);
var scored = model.Transform(ml.Data.LoadFromEnumerable(rows, definition));

var lines = new List<string>();
using (var cursor = scored.GetRowCursor(scored.Schema))
{
    var features = cursor.GetGetter<VBuffer<float>>(scored.Schema[vectorColumn]);
    var label = cursor.GetGetter<uint>(scored.Schema["PredictedLabel"]);
    VBuffer<float> f = default; uint key = 0;
    while (cursor.MoveNext())
    {
        features(ref f); label(ref key);
        lines.Add(key.ToString(CultureInfo.InvariantCulture) + " " + string.Join(" ", f.DenseValues().Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
    }
}
bool torch = File.ReadAllText("/proc/self/maps").Contains("libtorch", StringComparison.Ordinal);
lines.Add("libtorch-loaded " + (torch ? "yes" : "no"));
lines.Add("transformers " + string.Join(",", Flatten(model).Select(t => t.GetType().Name)));
File.WriteAllLines(args[3], lines);
return 0;

static IEnumerable<ITransformer> Flatten(ITransformer t)
    => t is TransformerChain<ITransformer> chain ? chain.SelectMany(Flatten) : new[] { t };

sealed class Row
{
    public float[] Pixels { get; set; } = Array.Empty<float>();
    public uint Label { get; set; } // the pipeline's MapValueToKey("Label") needs the column; its value is unused
}
