//! The tables of running-order edits, shared by the model's tests (`tests/rundown.rs`) and
//! the same edits over TCP (`tests/gateway/edits.rs`). Every case starts from RO1 with
//! stories 1..6, story 1 holding items 1..6 ([`six_stories`]), and gives the story order (or,
//! with a storyID, that story's item order) after the message, or the NACK's reason.

/// A message body, the story whose items to compare (`None`: the story order), and the
/// order expected or the reason of the refusal.
pub type Case<'a> = (&'a str, Option<&'a str>, Result<&'a str, &'a str>);

pub fn xml_item(id: &str) -> String {
    format!("<item><itemID>{id}</itemID><objID>M{id}</objID><mosID>gfx.studio1.mos</mosID></item>")
}

pub fn xml_story(id: &str, items: &str) -> String {
    let items: String = items.split_whitespace().map(xml_item).collect();
    format!("<story><storyID>{id}</storyID><storySlug>slug {id}</storySlug>{items}</story>")
}

/// The stories of RO1 every case starts from: 1..6, story 1 holding items 1..6.
pub fn six_stories() -> String {
    xml_story("1", "1 2 3 4 5 6")
        + &["2", "3", "4", "5", "6"]
            .iter()
            .map(|s| xml_story(s, ""))
            .collect::<String>()
}

/// Every legacy roStory* message, on stories 1..6 of RO1.
pub fn legacy_story_messages(run_table: impl Fn(&[Case<'_>])) {
    let s9 = xml_story("9", "");
    run_table(&[
        (
            &format!("<roStoryAppend><roID>RO1</roID>{s9}</roStoryAppend>"),
            None,
            Ok("1 2 3 4 5 6 9"),
        ),
        (
            &format!("<roStoryInsert><roID>RO1</roID><storyID>2</storyID>{s9}</roStoryInsert>"),
            None,
            Ok("1 9 2 3 4 5 6"),
        ),
        (
            &format!("<roStoryReplace><roID>RO1</roID><storyID>2</storyID>{s9}</roStoryReplace>"),
            None,
            Ok("1 9 3 4 5 6"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID><storyID>1</storyID></roStoryMove>",
            None,
            Ok("3 1 2 4 5 6"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID><storyID></storyID></roStoryMove>",
            None,
            Ok("1 2 4 5 6 3"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID></roStoryMove>",
            None,
            Ok("1 2 4 5 6 3"),
        ),
        (
            "<roStorySwap><roID>RO1</roID><storyID>1</storyID><storyID>3</storyID></roStorySwap>",
            None,
            Ok("3 2 1 4 5 6"),
        ),
        (
            "<roStoryDelete><roID>RO1</roID><storyID>3</storyID><storyID>5</storyID></roStoryDelete>",
            None,
            Ok("1 2 4 6"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>3</storyID><storyID>5</storyID><storyID>6</storyID><storyID>1</storyID><storyID>4</storyID></roStoryMoveMultiple>",
            None,
            Ok("2 3 5 6 1 4"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>1</storyID><storyID></storyID></roStoryMoveMultiple>",
            None,
            Ok("3 4 5 6 2 1"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID></roStoryMoveMultiple>",
            None,
            Ok("1 3 4 5 6 2"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>3</storyID><storyID>2</storyID><storyID>1</storyID></roStoryMoveMultiple>",
            None,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>1</storyID><storyID>2</storyID></roStoryMoveMultiple>",
            None,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            &format!("<roStoryInsert><roID>RO1</roID><storyID>S9</storyID>{s9}</roStoryInsert>"),
            None,
            Err("Unknown storyID S9 in running order RO1"),
        ),
        (
            &format!(
                "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
                xml_story("4", "")
            ),
            None,
            Err("Duplicate storyID 4 in running order RO1"),
        ),
        (
            "<roStorySwap><roID>RO1</roID><storyID>1</storyID><storyID>1</storyID></roStorySwap>",
            None,
            Err("SWAP of 1 with itself in running order RO1"),
        ),
    ]);
}

/// Every legacy roItem* message, on items 1..6 of story 1.
pub fn legacy_item_messages(run_table: impl Fn(&[Case<'_>])) {
    let i7 = xml_item("7");
    let one = Some("1");
    run_table(&[
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID>3</itemID>{i7}</roItemInsert>"
            ),
            one,
            Ok("1 2 7 3 4 5 6"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{i7}</roItemInsert>"
            ),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &format!(
                "<roItemReplace><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID>{i7}{}</roItemReplace>",
                xml_item("8")
            ),
            one,
            Ok("1 7 8 3 4 5 6"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>3</itemID><itemID>5</itemID><itemID>6</itemID><itemID>1</itemID><itemID>4</itemID></roItemMoveMultiple>",
            one,
            Ok("2 3 5 6 1 4"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>1</itemID><itemID></itemID></roItemMoveMultiple>",
            one,
            Ok("2 3 4 5 6 1"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID></roItemMoveMultiple>",
            one,
            Ok("1 3 4 5 6 2"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>2</itemID><itemID>1</itemID></roItemMoveMultiple>",
            one,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            "<roItemDelete><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>4</itemID></roItemDelete>",
            one,
            Ok("1 3 5 6"),
        ),
        (
            "<roItemDelete><roID>RO1</roID><storyID>1</storyID><itemID>9</itemID></roItemDelete>",
            one,
            Err("Unknown itemID 9 in story 1 of running order RO1"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{}</roItemInsert>",
                xml_item("3")
            ),
            one,
            Err("Duplicate itemID 3 in story 1 of running order RO1"),
        ),
        (
            &format!(
                "<roItemReplace><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{i7}</roItemReplace>"
            ),
            one,
            Err("roItemReplace needs a target itemID (running order RO1)"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>S9</storyID><itemID></itemID>{i7}</roItemInsert>"
            ),
            one,
            Err("Unknown storyID S9 in running order RO1"),
        ),
    ]);
}

pub fn action(op: &str, target: &str, source: &str) -> String {
    format!(
        "<roElementAction operation=\"{op}\"><roID>RO1</roID>{target}<element_source>{source}</element_source></roElementAction>"
    )
}

pub fn tgt(story: &str, item: Option<&str>) -> String {
    let item = item
        .map(|i| format!("<itemID>{i}</itemID>"))
        .unwrap_or_default();
    format!("<element_target><storyID>{story}</storyID>{item}</element_target>")
}

/// roElementAction on stories, as in the reference's semantics table.
pub fn element_action_story_cases(run_table: impl Fn(&[Case<'_>])) {
    let s9 = xml_story("9", "");
    let ids = |v: &[&str]| -> String {
        v.iter()
            .map(|i| format!("<storyID>{i}</storyID>"))
            .collect()
    };
    run_table(&[
        (
            &action("INSERT", &tgt("2", None), &s9),
            None,
            Ok("1 9 2 3 4 5 6"),
        ),
        (
            &action("INSERT", &tgt("", None), &s9),
            None,
            Ok("1 2 3 4 5 6 9"),
        ),
        (&action("INSERT", "", &s9), None, Ok("1 2 3 4 5 6 9")),
        (
            &action("REPLACE", &tgt("2", None), &s9),
            None,
            Ok("1 9 3 4 5 6"),
        ),
        (
            &action("REPLACE", &tgt("2", None), &xml_story("2", "x")),
            None,
            Ok("1 2 3 4 5 6"),
        ),
        (
            &action("MOVE", &tgt("1", None), &ids(&["5", "6"])),
            None,
            Ok("5 6 1 2 3 4"),
        ),
        (
            &action("MOVE", &tgt("", None), &ids(&["1"])),
            None,
            Ok("2 3 4 5 6 1"),
        ),
        (
            &action("MOVE", "", &ids(&["2", "1"])),
            None,
            Ok("3 4 5 6 2 1"),
        ),
        (&action("DELETE", "", &ids(&["6"])), None, Ok("1 2 3 4 5")),
        (
            &action("SWAP", "", &ids(&["1", "2"])),
            None,
            Ok("2 1 3 4 5 6"),
        ),
        (
            &action("SWAP", &tgt("", None), &ids(&["1", "6"])),
            None,
            Ok("6 2 3 4 5 1"),
        ),
        (
            &action("SWAP", "", &ids(&["1", "2", "3"])),
            None,
            Err("SWAP needs exactly 2 IDs, got 3 in running order RO1"),
        ),
        (
            &action("MOVE", &tgt("2", None), &ids(&["1", "2"])),
            None,
            Err("Target 2 is also moved in running order RO1"),
        ),
        (
            &action("REPLACE", &tgt("", None), &s9),
            None,
            Err("REPLACE needs a target storyID (running order RO1)"),
        ),
        (
            &action("REPLACE", &tgt("2", None), &xml_story("3", "")),
            None,
            Err("Duplicate storyID 3 in running order RO1"),
        ),
        (
            &action("DELETE", "", &s9),
            None,
            Err("DELETE cannot use story elements (running order RO1)"),
        ),
        (
            &action("INSERT", &tgt("2", None), &ids(&["3"])),
            None,
            Err("INSERT cannot use storyID elements (running order RO1)"),
        ),
        (
            &action("DELETE", "", &ids(&["S9"])),
            None,
            Err("Unknown storyID S9 in running order RO1"),
        ),
    ]);
}

/// roElementAction on items, as in the reference's semantics table.
pub fn element_action_item_cases(run_table: impl Fn(&[Case<'_>])) {
    let i7 = xml_item("7");
    let ids =
        |v: &[&str]| -> String { v.iter().map(|i| format!("<itemID>{i}</itemID>")).collect() };
    let one = Some("1");
    run_table(&[
        (
            &action("INSERT", &tgt("1", Some("2")), &i7),
            one,
            Ok("1 7 2 3 4 5 6"),
        ),
        (
            &action("INSERT", &tgt("1", Some("")), &i7),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &action("INSERT", &tgt("1", None), &i7),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &action("REPLACE", &tgt("1", Some("5")), &i7),
            one,
            Ok("1 2 3 4 7 6"),
        ),
        (
            &action("MOVE", &tgt("1", Some("1")), &ids(&["5"])),
            one,
            Ok("5 1 2 3 4 6"),
        ),
        (
            &action("MOVE", &tgt("1", None), &ids(&["1", "2"])),
            one,
            Ok("3 4 5 6 1 2"),
        ),
        (
            &action("DELETE", &tgt("1", None), &ids(&["5"])),
            one,
            Ok("1 2 3 4 6"),
        ),
        (
            &action("SWAP", &tgt("1", None), &ids(&["1", "2"])),
            one,
            Ok("2 1 3 4 5 6"),
        ),
        (
            &action("SWAP", &tgt("1", None), &ids(&["1"])),
            one,
            Err("SWAP needs exactly 2 IDs, got 1 in running order RO1"),
        ),
        (
            &action("DELETE", "", &ids(&["5"])),
            one,
            Err("DELETE needs a target storyID (running order RO1)"),
        ),
        (
            &action("INSERT", &tgt("", Some("")), &i7),
            one,
            Err("INSERT needs a target storyID (running order RO1)"),
        ),
        (
            &action("REPLACE", &tgt("1", None), &i7),
            one,
            Err("REPLACE needs a target itemID (running order RO1)"),
        ),
        (
            &action("MOVE", &tgt("1", Some("9")), &ids(&["1"])),
            one,
            Err("Unknown itemID 9 in story 1 of running order RO1"),
        ),
        (
            &action("MOVE", &tgt("1", Some("2")), &ids(&["2"])),
            one,
            Err("Target 2 is also moved in running order RO1"),
        ),
    ]);
}
